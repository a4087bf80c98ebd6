import { request } from "node:http";
import { createLocalProvider } from "@roder/runner-local";
import { type E2bStandIn, startE2bStandIn } from "@roder/runner-testkit";
import { FileNotFoundError, FilesystemEventType, FileType, Sandbox } from "e2b";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

// The stand-in's envd and edge, driven by the unmodified e2b SDK: each behaviour as E2B's own services have it
// (e2b-dev/infra envd, spec/envd), in this project's words.

let standIn: E2bStandIn;
const opts = () => ({
  apiKey: standIn.apiKey,
  apiUrl: standIn.apiUrl,
  sandboxUrl: standIn.sandboxUrl,
  domain: standIn.domain,
});

beforeAll(async () => {
  standIn = await startE2bStandIn({ backend: createLocalProvider(), metricsIntervalMs: 300 });
});
afterAll(async () => {
  await standIn.stop();
});

async function withSandbox(f: (sbx: Sandbox) => Promise<void>): Promise<void> {
  const sbx = await Sandbox.create("base", opts());
  try {
    await f(sbx);
  } finally {
    await sbx.kill().catch(() => {});
  }
}

/** Waits (bounded by the test's timeout) until `cond` holds. */
async function until<T>(cond: () => T | undefined | Promise<T | undefined>): Promise<T> {
  for (;;) {
    const v = await cond();
    if (v) return v;
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A raw HTTP request to the stand-in with a chosen Host header (fetch may not set Host). */
function get(path: string, host: string): Promise<{ status: number; body: string }> {
  const u = new URL(standIn.sandboxUrl);
  return new Promise((resolve, reject) => {
    request({ host: u.hostname, port: u.port, path, headers: { host } }, (res) => {
      let body = "";
      res.on("data", (d) => {
        body += d;
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    })
      .on("error", reject)
      .end();
  });
}

describe("envd's filesystem answers as E2B's", () => {
  it("answers absolute paths, resolving relative ones and ~ against the user's home", () =>
    withSandbox(async (sbx) => {
      const written = await sbx.files.write("notes/a.txt", "alpha");
      expect(written.path).toBe("/home/user/notes/a.txt");
      const info = await sbx.files.getInfo("~/notes/a.txt");
      expect(info).toMatchObject({
        name: "a.txt",
        path: "/home/user/notes/a.txt",
        type: FileType.FILE,
        size: 5,
        mode: 0o644,
        permissions: "-rw-r--r--",
        owner: "user",
        group: "user",
      });
      const moved = await sbx.files.rename("notes/a.txt", "other/deeper/b.txt");
      expect(moved.path).toBe("/home/user/other/deeper/b.txt");
      expect(await sbx.files.read("/home/user/other/deeper/b.txt")).toBe("alpha");
      // One filesystem: what /files writes outside the home, commands see (and the other way round).
      expect((await sbx.files.write("/tmp/up/t.txt", "in tmp")).path).toBe("/tmp/up/t.txt");
      expect((await sbx.commands.run("cat /tmp/up/t.txt")).stdout).toBe("in tmp");
      await sbx.commands.run("echo from-command > /tmp/c.txt");
      expect(await sbx.files.read("/tmp/c.txt")).toBe("from-command\n");
    }));

  it("reports a symlink's resolved target, and MakeDir on an existing directory as already there", () =>
    withSandbox(async (sbx) => {
      await sbx.files.write("target.txt", "t");
      await sbx.commands.run("ln -s target.txt link.txt && ln -s missing dangling");
      const link = await sbx.files.getInfo("link.txt");
      expect(link.symlinkTarget).toBe("/home/user/target.txt");
      expect(link.type).toBe(FileType.FILE);
      expect(link.permissions).toBe("Lrwxrwxrwx");
      expect((await sbx.files.getInfo("dangling")).symlinkTarget).toBe("/home/user/dangling");
      expect(await sbx.files.makeDir("made/inner")).toBe(true);
      expect(await sbx.files.makeDir("made/inner")).toBe(false);
      const notDir = await sbx.files.makeDir("target.txt").catch((e: unknown) => e);
      expect((notDir as Error).message).toContain("path already exists but it is not a directory");
      await expect(sbx.files.getInfo("nothing-here")).rejects.toBeInstanceOf(FileNotFoundError);
    }));

  it("lists a directory to the asked depth, with the requested path as base", () =>
    withSandbox(async (sbx) => {
      await sbx.commands.run(
        "mkdir -p tree/d1/d2 && echo x > tree/f1 && echo y > tree/d1/f2 && echo z > tree/d1/d2/f3",
      );
      const one = await sbx.files.list("tree");
      expect(one.map((e) => [e.path, e.type])).toEqual([
        ["/home/user/tree/d1", FileType.DIR],
        ["/home/user/tree/f1", FileType.FILE],
      ]);
      const two = await sbx.files.list("tree", { depth: 2 });
      expect(two.map((e) => e.path)).toEqual([
        "/home/user/tree/d1",
        "/home/user/tree/d1/d2",
        "/home/user/tree/d1/f2",
        "/home/user/tree/f1",
      ]);
      await expect(sbx.files.list("no-such-dir")).rejects.toBeInstanceOf(FileNotFoundError);
      const file = await sbx.files.list("tree/f1").catch((e: unknown) => e);
      expect((file as Error).message).toContain("path is not a directory");
    }));

  it("stores gzip uploads decompressed, one or many", () =>
    withSandbox(async (sbx) => {
      const text = "compressed on the way, plain on disk ".repeat(50);
      await sbx.files.write("z.txt", text, { gzip: true });
      expect((await sbx.commands.run("cat z.txt")).stdout).toBe(text);
      await sbx.files.writeFiles(
        [
          { path: "z1.txt", data: "one" },
          { path: "z2.txt", data: "two" },
        ],
        { gzip: true },
      );
      expect((await sbx.commands.run("cat z1.txt z2.txt")).stdout).toBe("onetwo");
      expect(await sbx.files.read("z.txt", { gzip: true })).toBe(text);
    }));

  it("keeps upload metadata as user.e2b.* xattrs: returned, listed, kept by rename, replaced by the next upload", () =>
    withSandbox(async (sbx) => {
      const w = await sbx.files.write("m.txt", "x", { metadata: { author: "ada", stage: "draft" } });
      expect(w.metadata).toEqual({ author: "ada", stage: "draft" });
      const xattr = await sbx.commands.run(
        `python3 -c "import os; print(os.getxattr('m.txt', 'user.e2b.author').decode())"`,
      );
      expect(xattr.stdout.trim()).toBe("ada");
      await sbx.files.rename("m.txt", "n.txt");
      expect((await sbx.files.getInfo("n.txt")).metadata).toEqual({ author: "ada", stage: "draft" });
      expect((await sbx.files.list(".")).find((e) => e.name === "n.txt")?.metadata).toEqual({
        author: "ada",
        stage: "draft",
      });
      await sbx.files.write("n.txt", "y");
      expect((await sbx.files.getInfo("n.txt")).metadata).toBeUndefined();
    }));

  it("streams WatchDir events (create, write, remove; entries on request); a missing directory is not found", () =>
    withSandbox(async (sbx) => {
      await sbx.files.makeDir("watched/sub");
      const events: Array<{ name: string; type: FilesystemEventType; path?: string }> = [];
      const handle = await sbx.files.watchDir(
        "watched",
        (e) => void events.push({ name: e.name, type: e.type, ...(e.entry ? { path: e.entry.path } : {}) }),
        { recursive: true, includeEntry: true },
      );
      await sbx.commands.run("echo 1 > watched/sub/f.txt && echo 2 >> watched/sub/f.txt");
      // The entry is read when the event is handled: the file must still be there then (a loaded machine is slow).
      await until(() => events.some((e) => e.name === "sub/f.txt" && e.type === FilesystemEventType.WRITE));
      await sbx.commands.run("rm watched/sub/f.txt");
      await until(() => events.some((e) => e.type === FilesystemEventType.REMOVE));
      // An upload writes over an existing file in place, as envd does: a write, not a rename.
      await sbx.files.write("watched/up.txt", "first");
      await sbx.files.write("watched/up.txt", "second");
      await until(
        () => events.filter((e) => e.name === "up.txt" && e.type === FilesystemEventType.WRITE).length >= 2,
      );
      expect(events.some((e) => e.type === FilesystemEventType.RENAME)).toBe(false);
      await handle.stop();
      expect(events).toContainEqual({
        name: "sub/f.txt",
        type: FilesystemEventType.CREATE,
        path: "/home/user/watched/sub/f.txt",
      });
      expect(events.some((e) => e.name === "sub/f.txt" && e.type === FilesystemEventType.WRITE)).toBe(true);
      expect(events).toContainEqual({ name: "sub/f.txt", type: FilesystemEventType.REMOVE });
      await expect(sbx.files.watchDir("not-there", () => {})).rejects.toBeInstanceOf(FileNotFoundError);
    }));
});

describe("envd's processes take input as E2B's do", () => {
  it("sends stdin to a process started with stdin, and closing it ends the input", () =>
    withSandbox(async (sbx) => {
      const cat = await sbx.commands.run("cat; echo '<eof>'", { background: true, stdin: true });
      await sbx.commands.sendStdin(cat.pid, "first line\n");
      await cat.sendStdin(new TextEncoder().encode("second ✓ 'quoted' $HOME\n"));
      await cat.closeStdin();
      const done = await cat.wait();
      expect(done.stdout).toBe("first line\nsecond ✓ 'quoted' $HOME\n<eof>\n");
      // Without stdin the process reads nothing, and input to it is refused as envd refuses it.
      const none = await sbx.commands.run("sleep 30", { background: true });
      const refused = await sbx.commands.sendStdin(none.pid, "x").catch((e: unknown) => e);
      expect((refused as Error).message).toContain("stdin not enabled or closed");
      await none.kill();
      expect((await sbx.commands.run("cat")).stdout).toBe("");
    }));

  it("runs a PTY at the asked size, takes input, resizes, and reports the shell's exit code", () =>
    withSandbox(async (sbx) => {
      let out = "";
      const decoder = new TextDecoder();
      const term = await sbx.pty.create({
        cols: 91,
        rows: 17,
        onData: (d) => {
          out += decoder.decode(d);
        },
      });
      await sbx.pty.sendInput(term.pid, new TextEncoder().encode("echo size=$(tput cols)x$(tput lines)\n"));
      await until(() => out.includes("size=91x17"));
      await sbx.pty.resize(term.pid, { cols: 120, rows: 40 });
      await sbx.pty.sendInput(term.pid, new TextEncoder().encode("echo size=$(tput cols)x$(tput lines)\n"));
      await until(() => out.includes("size=120x40"));
      // CloseStdin is not for terminals (envd: send Ctrl+D).
      const close = await sbx.commands.closeStdin(term.pid).catch((e: unknown) => e);
      expect((close as Error).message).toContain("cannot close stdin for PTY process");
      await sbx.pty.sendInput(term.pid, new TextEncoder().encode("exit 3\n"));
      const end = await term.wait().catch((e: { exitCode?: number }) => e);
      expect(end.exitCode).toBe(3);
    }));
});

describe("E2B's edge: signed file URLs, the port proxy, health", () => {
  it("serves signed download and upload URLs, checks their signature and expiry as envd", () =>
    withSandbox(async (sbx) => {
      await sbx.files.write("s.txt", "signed content");
      const ok = await fetch(await sbx.downloadUrl("s.txt", { useSignatureExpiration: 60 }));
      expect([ok.status, await ok.text()]).toEqual([200, "signed content"]);
      const noExpiry = await fetch(await sbx.downloadUrl("s.txt"));
      expect(noExpiry.status).toBe(200);
      const expired = await fetch(await sbx.downloadUrl("s.txt", { useSignatureExpiration: -10 }));
      expect([expired.status, await expired.json()]).toEqual([
        401,
        { code: 401, message: "signature is already expired" },
      ]);
      const url = new URL(await sbx.downloadUrl("s.txt", { useSignatureExpiration: 60 }));
      url.searchParams.set("path", "other.txt");
      const tampered = await fetch(url);
      expect([tampered.status, await tampered.json()]).toEqual([
        401,
        { code: 401, message: "invalid signature" },
      ]);
      const form = new FormData();
      form.append("file", new Blob(["uploaded"]));
      const up = await fetch(await sbx.uploadUrl("up/u.txt", { useSignatureExpiration: 60 }), {
        method: "POST",
        body: form,
      });
      expect([up.status, await up.json()]).toEqual([
        200,
        [{ path: "/home/user/up/u.txt", name: "u.txt", type: "file" }],
      ]);
      expect(await sbx.files.read("up/u.txt")).toBe("uploaded");
      // A download signature does not open the upload.
      const wrongOp = await fetch((await sbx.downloadUrl("up/u.txt")).toString(), {
        method: "POST",
        body: form,
      });
      expect(wrongOp.status).toBe(401);
    }));

  it("proxies <port>-<id>.<domain> to the sandbox's port; a closed port and a gone sandbox are E2B's 502s", async () => {
    const sbx = await Sandbox.create("base", opts());
    const server = await sbx.commands.run(
      "mkdir -p www && echo served > www/index.html && python3 -m http.server 8765 -d www",
      {
        background: true,
      },
    );
    const host = sbx.getHost(8765);
    expect(host).toBe(`8765-${sbx.sandboxId}.${standIn.domain}`);
    const page = await until(async () => {
      const r = await get("/index.html", host);
      return r.status === 200 ? r : undefined;
    });
    expect(page.body).toBe("served\n");
    const closed = await get("/", sbx.getHost(8766));
    expect(closed.status).toBe(502);
    expect(JSON.parse(closed.body)).toEqual({
      sandboxId: sbx.sandboxId,
      message: "The sandbox is running but port is not open",
      port: 8766,
      code: 502,
    });
    await server.kill();
    await sbx.kill();
    const gone = await get("/", host);
    expect([gone.status, JSON.parse(gone.body)]).toEqual([
      502,
      { sandboxId: sbx.sandboxId, message: "The sandbox was not found", code: 502 },
    ]);
    expect(await sbx.isRunning()).toBe(false);
  }, 30_000);
});

describe("E2B's edge over HTTPS (getHost names through the intercepting proxy)", () => {
  it("serves https://<port>-<id>.<domain> with a certificate of the run's CA; refuses other hosts", async () => {
    const { execFile } = await import("node:child_process");
    const tls = await startE2bStandIn({ backend: createLocalProvider(), httpsEdge: true });
    const edge = tls.httpsEdge!;
    /** curl through the proxy, trusting only the run's CA: [exit code, HTTP status, body]. */
    const curl = (url: string, trust = true) =>
      new Promise<[number, string, string]>((resolve) => {
        const args = ["-sS", "--max-time", "20", "--proxy", edge.proxyUrl, "-w", "\n%{http_code}", url];
        execFile("curl", trust ? ["--cacert", edge.caCertFile, ...args] : args, (error, stdout) => {
          const code = error ? Number((error as { code?: unknown }).code ?? 1) : 0;
          const at = stdout.lastIndexOf("\n");
          resolve([code, stdout.slice(at + 1), stdout.slice(0, Math.max(0, at))]);
        });
      });
    const sbx = await Sandbox.create("base", {
      apiKey: tls.apiKey,
      apiUrl: tls.apiUrl,
      sandboxUrl: tls.sandboxUrl,
      domain: tls.domain,
    });
    try {
      await sbx.commands.run("mkdir -p www && echo over-tls > www/index.html");
      await sbx.commands.run("python3 -m http.server 8777 -d www", { background: true });
      const url = `https://${sbx.getHost(8777)}/index.html`;
      const page = await until(async () => {
        const r = await curl(url);
        return r[1] === "200" ? r : undefined;
      });
      expect(page).toEqual([0, "200", "over-tls\n"]);
      // The certificate is the run's CA's: without trusting it, TLS fails (curl 60).
      expect((await curl(url, false))[0]).toBe(60);
      // E2B's answers come through too: a closed port is its 502.
      const closed = await curl(`https://${sbx.getHost(8778)}/`);
      expect(closed[1]).toBe("502");
      expect(JSON.parse(closed[2])).toMatchObject({ message: "The sandbox is running but port is not open" });
      // Only one label below the domain, and nothing else, goes through: the rest is refused at CONNECT.
      expect((await curl(`https://a.${sbx.getHost(8777)}/`))[0]).not.toBe(0);
      expect((await curl("https://example.com/"))[0]).not.toBe(0);
      await sbx.kill();
      const gone = await curl(url);
      expect([gone[1], JSON.parse(gone[2]).message]).toEqual(["502", "The sandbox was not found"]);
    } finally {
      await sbx.kill().catch(() => {});
      await tls.stop();
    }
  }, 60_000);
});

describe("E2B's lifecycle: auto-pause and auto-resume", () => {
  it("pauses at the timeout instead of killing; traffic through the edge resumes an auto-resume sandbox", async () => {
    const manual = await Sandbox.create("base", {
      ...opts(),
      timeoutMs: 60_000,
      lifecycle: { onTimeout: "pause", autoResume: false },
    });
    const auto = await Sandbox.create("base", {
      ...opts(),
      timeoutMs: 60_000,
      lifecycle: { onTimeout: "pause", autoResume: true },
    });
    try {
      await manual.files.write("kept.txt", "kept through the pause");
      await auto.commands.run("mkdir -p www && echo awake > www/index.html");
      const server = await auto.commands.run("python3 -m http.server 8771 -d www", { background: true });
      // Its stream is cut when the sandbox pauses (as a paused VM's connections are); the server runs on.
      const cut = server.wait().catch((e: unknown) => e);
      await until(async () => (await get("/index.html", auto.getHost(8771))).status === 200);
      // Set up: now their timeouts pass.
      await manual.setTimeout(500);
      await auto.setTimeout(500);
      await until(async () => (await manual.getInfo()).state === "paused");
      await until(async () => (await auto.getInfo()).state === "paused");
      expect((await manual.getInfo()).lifecycle).toEqual({ onTimeout: "pause", autoResume: false });
      expect(await manual.isRunning()).toBe(false);
      // No auto-resume: the edge answers 502 and it stays paused until connect.
      expect((await get("/", manual.getHost(8771))).status).toBe(502);
      expect((await manual.getInfo()).state).toBe("paused");
      await manual.connect();
      expect(await manual.files.read("kept.txt")).toBe("kept through the pause");
      // Auto-resume: a request to one of its ports wakes it, and its server (kept while paused) answers.
      const woken = await get("/index.html", auto.getHost(8771));
      expect([woken.status, woken.body]).toEqual([200, "awake\n"]);
      expect((await auto.getInfo()).state).toBe("running");
      expect(await cut).toBeInstanceOf(Error);
    } finally {
      await manual.kill().catch(() => {});
      await auto.kill().catch(() => {});
    }
  }, 60_000);
});

describe("E2B's control plane: snapshots and metrics", () => {
  it(
    "names, lists (all, by sandbox, by name) and deletes snapshots; a named one restores by its name",
    () =>
      withSandbox(async (sbx) => {
        await sbx.files.write("snap.txt", "in the snapshot");
        const plain = await sbx.createSnapshot();
        expect(plain.snapshotId).toMatch(/:default$/);
        const named = await sbx.createSnapshot({ name: "my-snap" });
        expect(named).toEqual({ snapshotId: "standin/my-snap:default", names: ["standin/my-snap"] });
        const all = await Sandbox.listSnapshots(opts()).nextItems();
        expect(all.map((s) => s.snapshotId)).toEqual(
          expect.arrayContaining([plain.snapshotId, named.snapshotId]),
        );
        const mine = await sbx.listSnapshots().nextItems();
        expect(mine).toHaveLength(2);
        expect(await Sandbox.listSnapshots({ ...opts(), name: "my-snap" }).nextItems()).toEqual([named]);
        expect(await Sandbox.listSnapshots({ ...opts(), name: "none" }).nextItems()).toEqual([]);
        const restored = await Sandbox.create("my-snap", opts());
        expect(await restored.files.read("snap.txt")).toBe("in the snapshot");
        await restored.kill();
        expect(await Sandbox.deleteSnapshot(plain.snapshotId, opts())).toBe(true);
        expect(await Sandbox.deleteSnapshot(plain.snapshotId, opts())).toBe(false);
        expect(await Sandbox.deleteSnapshot(named.snapshotId, opts())).toBe(true);
        const gone = await Sandbox.create(named.snapshotId, opts()).catch((e: unknown) => e);
        expect((gone as Error).message).toContain("not found");
      }),
    60_000,
  );

  it(
    "forks a running sandbox: each fork starts from its files, runs on its own, and the original keeps running",
    () =>
      withSandbox(async (sbx) => {
        await sbx.files.write("state.txt", "before the fork");
        const forks = await sbx.fork({ count: 2, timeoutMs: 60_000 });
        const [a, b] = forks as Sandbox[];
        try {
          expect(new Set([a!.sandboxId, b!.sandboxId, sbx.sandboxId]).size).toBe(3);
          expect(await a!.files.read("state.txt")).toBe("before the fork");
          await a!.files.write("state.txt", "changed in a fork");
          expect(await b!.files.read("state.txt")).toBe("before the fork");
          expect(await sbx.files.read("state.txt")).toBe("before the fork");
          expect(await sbx.isRunning()).toBe(true);
        } finally {
          await Promise.all([a, b].map((f) => f?.kill()));
        }
        const bad = await Sandbox.fork(sbx.sandboxId, { ...opts(), count: 101 }).catch((e: unknown) => e);
        expect((bad as Error).message).toContain("count must be between 1 and 100");
        await sbx.kill();
        await expect(sbx.fork()).rejects.toThrow(/not found|doesn't exist/);
      }),
    60_000,
  );

  it("collects metrics while the sandbox runs, filtered by time range", () =>
    withSandbox(async (sbx) => {
      const start = new Date();
      const metrics = await until(async () => {
        const m = await sbx.getMetrics();
        return m.length > 0 ? m : undefined;
      });
      const m = metrics[0]!;
      expect(m.cpuCount).toBeGreaterThan(0);
      expect(m.memTotal).toBeGreaterThan(m.memUsed);
      expect(m.diskTotal).toBeGreaterThan(0);
      expect(m.timestamp.getTime()).toBeGreaterThanOrEqual(Math.floor(start.getTime() / 1000) * 1000);
      const before = await sbx.getMetrics({
        start: new Date(start.getTime() - 3_600_000),
        end: new Date(start.getTime() - 1_800_000),
      });
      expect(before).toEqual([]);
    }));
});
