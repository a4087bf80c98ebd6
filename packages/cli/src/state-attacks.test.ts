import { type ChildProcess, execFileSync, spawn, spawnSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

// Red-team cases of issue 15: a state file is data, never authority; a token goes only where it is configured;
// serve keeps isolation the operator's.
const root = resolve(import.meta.dirname, "../../..");
const bin = join(root, "packages/cli/dist/bin.js");
const work = mkdtempSync(join(tmpdir(), "roder-cli-attacks-"));
const spawned: ChildProcess[] = [];

function cli(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [bin, ...args], {
    cwd: work,
    encoding: "utf8",
    env: { ...process.env, RODER_RUNNER_HTTP_URL: "", ...env },
    timeout: 60_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

beforeAll(() => {
  execFileSync("npx", ["turbo", "run", "build", "--filter=@roder/runner-cli..."], {
    cwd: root,
    stdio: "ignore",
  });
}, 300_000);
afterAll(() => {
  for (const c of spawned) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  rmSync(work, { recursive: true, force: true });
});

/** A victim directory with a canary file; the test checks it is intact after each attack. */
function victim(parent: string, name: string): string {
  const dir = join(parent, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "precious.txt"), "keep me");
  return dir;
}

function keptState(): { file: string; state: Record<string, unknown> } {
  const file = join(work, `kept-${randomUUID()}.json`);
  const r = cli(["exec", "-d", "local", "--keep", "--state-out", file, "--", "true"]);
  expect(r.code, r.stderr).toBe(0);
  return { file, state: JSON.parse(readFileSync(file, "utf8")) };
}

describe("roder-runner close --session evil.json", () => {
  it("never deletes or unmounts what a forged state names", () => {
    const { file: realFile, state: real } = keptState();
    const meta = real.metadata as Record<string, unknown>;
    const id = `local-${randomUUID()}`;
    // A directory named like a session, in a directory everyone can write to (the system temp dir).
    const inTmp = victim(tmpdir(), id);
    // One in a private dir of ours, but without the runner's tag and registry record.
    const priv = mkdtempSync(join(tmpdir(), "roder-priv-"));
    const untagged = victim(priv, id);
    writeFileSync(join(priv, `${id}.session.json`), JSON.stringify({ session_id: id }));
    // Registries planted by someone else: one anyone can write to, one owned by another user.
    const planted = [0o777, 0o755].map((mode) => {
      const dir = mkdtempSync(join(tmpdir(), "roder-reg-"));
      writeFileSync(join(dir, `${id}.json`), JSON.stringify({ workspace_root: untagged, binds: [] }));
      chmodSync(dir, mode);
      if (mode === 0o755 && process.getuid?.() === 0) chownSync(dir, 65534, 65534);
      return dir;
    });
    const outside = victim(work, "outside");
    const forged = (over: Record<string, unknown>, sessionId = id) => {
      const f = join(work, `evil-${randomUUID()}.json`);
      writeFileSync(f, JSON.stringify({ ...real, session_id: sessionId, metadata: { ...meta, ...over } }));
      return f;
    };
    const attacks = [
      // Any directory at all, under the real session's id.
      forged({ workspace_root: outside, host_root: outside }, real.session_id as string),
      forged({ workspace_root: inTmp, host_root: inTmp }),
      forged({ workspace_root: untagged, host_root: untagged }),
      ...planted.map((dir) => forged({ workspace_root: untagged, host_root: untagged, registry_dir: dir })),
      // The real session, with bind mounts outside its workspace to "undo".
      forged({ binds: [outside] }, real.session_id as string),
    ];
    for (const f of attacks) {
      const r = cli(["close", "--session", f]);
      expect(r.code, `${attacks.indexOf(f)} ${readFileSync(f, "utf8")}: ${r.stderr}`).toBe(3);
      expect(r.stderr).toMatch(/^roder-runner: error: refusing the session state in .*nothing was touched\n/);
    }
    for (const dir of [inTmp, untagged, outside])
      expect(readFileSync(join(dir, "precious.txt"), "utf8")).toBe("keep me");
    // The real state still closes, and its workspace goes.
    const ws = meta.host_root as string;
    expect(existsSync(ws)).toBe(true);
    expect(cli(["close", "--session", realFile]).code).toBe(0);
    expect(existsSync(ws)).toBe(false);
    for (const d of [inTmp, priv, ...planted]) rmSync(d, { recursive: true, force: true });
  });

  it("--state-out does not follow a planted symlink", () => {
    const target = join(work, "victim-file.txt");
    writeFileSync(target, "original");
    const link = join(work, "planted.json");
    symlinkSync(target, link);
    const r = cli(["exec", "-d", "local", "--keep", "--state-out", link, "--", "true"]);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain("symbolic link");
    expect(readFileSync(target, "utf8")).toBe("original");
  });
});

describe("the CLI's RODER_RUNNER_HTTP_TOKEN goes only to RODER_RUNNER_HTTP_URL", () => {
  it("refuses a state naming another server, naming both, and sends it nothing", async () => {
    const seen: string[] = [];
    const evil = createServer((req, res) => {
      seen.push(`${req.method} ${req.url} ${req.headers.authorization ?? ""}`);
      res.end("{}");
    });
    await new Promise<void>((r) => evil.listen(0, "127.0.0.1", r));
    const evilUrl = `http://127.0.0.1:${(evil.address() as { port: number }).port}`;
    try {
      const f = join(work, "http-state.json");
      writeFileSync(
        f,
        JSON.stringify({
          provider_id: "http",
          session_id: "ses_0123456789abcdef0123456789abcdef",
          destination_id: "d",
          snapshot: null,
          metadata: { base_url: evilUrl },
        }),
      );
      const token = "cli-token-never-sent-4411";
      const unset = cli(["close", "--session", f], { RODER_RUNNER_HTTP_TOKEN: token });
      expect(unset.code).toBe(3);
      expect(unset.stderr).toContain(evilUrl);
      const other = cli(["exec", "--session", f, "--", "true"], {
        RODER_RUNNER_HTTP_TOKEN: token,
        RODER_RUNNER_HTTP_URL: "http://127.0.0.1:1/v1",
      });
      expect(other.code).toBe(3);
      expect(other.stderr).toContain(evilUrl);
      expect(other.stderr).toContain("http://127.0.0.1:1/v1");
      expect(`${unset.stderr}${other.stderr}`).not.toContain(token);
      expect(seen).toEqual([]);
    } finally {
      evil.close();
    }
  });
});

describe("roder-runner serve keeps isolation the operator's", () => {
  async function serve(args: string[]) {
    const token = "serve-policy-token-1234";
    const child = spawn(process.execPath, [bin, "serve", "--port", "0", ...args], {
      env: { ...process.env, RODER_RUNNER_SERVER_TOKEN: token },
      stdio: ["ignore", "pipe", "pipe"],
    });
    spawned.push(child);
    let err = "";
    child.stderr!.on("data", (b) => {
      err += b;
    });
    const url = await new Promise<string>((res, rej) => {
      let out = "";
      child.stdout!.on("data", (b) => {
        out += b;
        const m = /on (http:\/\/\S+)/.exec(out);
        if (m) res(m[1]!);
      });
      child.on("exit", () => rej(new Error(`serve exited: ${out} ${err}`)));
    });
    const create = (config: unknown) =>
      fetch(`${url}/sessions`, {
        method: "POST",
        headers: { authorization: `Bearer ${token}` },
        body: JSON.stringify({ destination_id: "d", config }),
      });
    const stop = async () => {
      const exited = new Promise((r) => child.on("exit", r));
      child.kill("SIGTERM");
      await exited;
    };
    return { url, create, stop, stderr: () => err };
  }

  it("isolates by default and refuses a client's weakening keys; --isolation none warns", async () => {
    const s = await serve([]);
    try {
      for (const config of [{ bwrap_unshare_pid: false }, { isolation: "none" }, { network: "host" }]) {
        const res = await s.create(config);
        expect(res.status, JSON.stringify(config)).toBe(403);
        expect(((await res.json()) as { error: { code: string } }).error.code).toBe("config_refused");
      }
      // The Rust client's vendor keys are ignored and listed.
      const ok = await s.create({ template: "base", region: "iad" });
      expect(ok.status).toBe(201);
      expect(((await ok.json()) as { ignored_config_keys: string[] }).ignored_config_keys).toEqual([
        "template",
        "region",
      ]);
    } finally {
      await s.stop();
    }
    const none = await serve(["--isolation", "none", "--allow-host-network"]);
    try {
      expect(none.stderr()).toContain("warning: --isolation none");
      const res = await none.create({ isolation: "none" });
      expect(res.status).toBe(201);
    } finally {
      await none.stop();
    }
    expect(cli(["serve", "--isolation", "docker"], { RODER_RUNNER_SERVER_TOKEN: "t".repeat(24) }).code).toBe(
      2,
    );
  });

  it("--host-is-sandbox is the operator's: no client widens the file scope, and it needs --isolation none", async () => {
    const put = (s: { url: string }, sid: string, path: string) =>
      fetch(`${s.url}/sessions/${sid}/files?path=${encodeURIComponent(path)}`, {
        method: "PUT",
        headers: { authorization: "Bearer serve-policy-token-1234" },
        body: "x",
      });
    const target = join(tmpdir(), `roder-host-is-sandbox-${randomUUID()}`);
    const narrow = await serve(["--isolation", "none"]);
    try {
      // Asking for it under any name: ignored and listed (the backend has no such key); the scope stays narrow.
      const res = await narrow.create({ host_is_sandbox: true, hostIsSandbox: true, file_scope: "sandbox" });
      expect(res.status).toBe(201);
      const body = (await res.json()) as {
        session_id: string;
        file_scope: string;
        ignored_config_keys: string[];
      };
      expect(body.file_scope).toBe("workspace");
      expect([...body.ignored_config_keys].sort()).toEqual([
        "file_scope",
        "hostIsSandbox",
        "host_is_sandbox",
      ]);
      const w = await put(narrow, body.session_id, target);
      expect(w.status).toBe(400);
      expect(((await w.json()) as { error: { code: string } }).error.code).toBe("path_outside_workspace");
      expect(existsSync(target)).toBe(false);
    } finally {
      await narrow.stop();
    }
    const token = { RODER_RUNNER_SERVER_TOKEN: "t".repeat(24) };
    for (const args of [["--host-is-sandbox"], ["--isolation", "bwrap", "--host-is-sandbox"]]) {
      const r = cli(["serve", ...args], token);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toContain("--host-is-sandbox needs the local provider with --isolation none");
    }
    const wide = await serve(["--isolation", "none", "--host-is-sandbox"]);
    try {
      const res = await wide.create({});
      const body = (await res.json()) as { session_id: string; file_scope: string };
      expect(body.file_scope).toBe("sandbox");
      expect((await put(wide, body.session_id, target)).status).toBe(204);
      expect(readFileSync(target, "utf8")).toBe("x");
    } finally {
      await wide.stop();
      rmSync(target, { force: true });
    }
  });
});
