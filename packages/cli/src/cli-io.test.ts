import { type ChildProcess, execFileSync, spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createLocalProvider } from "@roder/runner-local";
import { type E2bStandIn, startE2bStandIn } from "@roder/runner-testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

// Issue 17 item 4 / issue 20 item 1: what the CLI does with stdin, terminals, state, snapshots, errors and
// large copies, checked by running the built binary as a real process.

const root = resolve(import.meta.dirname, "../../..");
const bin = join(root, "packages/cli/dist/bin.js");
const work = mkdtempSync(join(tmpdir(), "roder-cli-io-"));
const workspaces = join(work, "workspaces");
const snapshots = join(work, "snapshots");
const stateDir = join(work, "state");
mkdirSync(workspaces, { mode: 0o700 });
// A destination of this file's own: its workspaces live under `workspaces`, so a leak is seen.
const dest = join(work, "dest.json");
writeFileSync(
  dest,
  JSON.stringify({
    id: "io",
    provider_id: "unix-local",
    config: { workspace_dir: workspaces, snapshot_dir: snapshots },
    default_manifest: { entries: [], mounts: [] },
  }),
);
const baseEnv = { ...process.env, RODER_RUNNER_STATE_DIR: stateDir } as Record<string, string>;
const leftWorkspaces = () =>
  existsSync(workspaces)
    ? readdirSync(workspaces).filter((n) => n.startsWith("local-") && !n.endsWith(".json"))
    : [];

function cli(args: string[], opts: { input?: Buffer | string; env?: Record<string, string> } = {}) {
  const r = spawnSync(process.execPath, [bin, ...args], {
    cwd: work,
    input: opts.input,
    env: { ...baseEnv, ...opts.env },
    timeout: 120_000,
  });
  return { code: r.status, stdout: r.stdout.toString(), stderr: r.stderr.toString(), raw: r.stdout };
}

const spawned: ChildProcess[] = [];
/** The CLI run to its end without blocking this process (for servers that run in it). */
async function runAsync(args: string[], opts: { env?: Record<string, string>; input?: string } = {}) {
  const p = start(args, opts);
  p.child.stdin!.end(opts.input);
  const code = await new Promise<number | null>((r) => p.child.on("close", (c) => r(c)));
  return { code, stdout: p.out, stderr: p.err };
}
/** A running CLI whose output can be awaited piece by piece. */
function start(args: string[], opts: { env?: Record<string, string>; viaScript?: boolean } = {}) {
  const argv = [bin, ...args];
  const child = opts.viaScript
    ? spawn("script", ["-qefc", [process.execPath, ...argv].map((a) => `'${a}'`).join(" "), "/dev/null"], {
        cwd: work,
        env: { ...baseEnv, ...opts.env },
      })
    : spawn(process.execPath, argv, { cwd: work, env: { ...baseEnv, ...opts.env } });
  spawned.push(child);
  let out = "";
  let err = "";
  const waiters: Array<() => void> = [];
  const poke = () => {
    for (const w of waiters.splice(0)) w();
  };
  child.stdout!.on("data", (b) => {
    out += b;
    poke();
  });
  child.stderr!.on("data", (b) => {
    err += b;
    poke();
  });
  const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
  return {
    child,
    get out() {
      return out;
    },
    get err() {
      return err;
    },
    exited,
    /** Resolves once stdout (or stderr) matches; rejects if the process ends first. */
    async waitFor(re: RegExp, which: "out" | "err" = "out"): Promise<RegExpMatchArray> {
      let done = false;
      void exited.then(() => {
        done = true;
        poke();
      });
      for (;;) {
        const m = (which === "out" ? out : err).match(re);
        if (m) return m;
        if (done) throw new Error(`ended before ${re}: stdout=${out} stderr=${err}`);
        await new Promise<void>((r) => waiters.push(r));
      }
    },
  };
}

beforeAll(() => {
  execFileSync("npx", ["turbo", "run", "build", "--filter=@roder/runner-cli..."], {
    cwd: root,
    stdio: "ignore",
  });
}, 300_000);

let e2b: E2bStandIn | undefined;
afterAll(async () => {
  for (const c of spawned) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  await e2b?.stop();
});

describe("exec and stdin", () => {
  it("piped stdin reaches the command byte for byte; no stdin is end of input", () => {
    expect(cli(["exec", "-d", dest, "--", "cat"], { input: "x\n" })).toMatchObject({
      code: 0,
      stdout: "x\n",
    });
    const bytes = Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 31) % 256));
    const r = cli(["exec", "-d", dest, "--", "cat"], { input: bytes });
    expect(r.code).toBe(0);
    expect(r.raw.equals(bytes)).toBe(true);
    // stdin ignored by the caller (/dev/null): cat sees end of input at once.
    const none = spawnSync(process.execPath, [bin, "exec", "-d", dest, "--", "cat"], {
      cwd: work,
      stdio: ["ignore", "pipe", "pipe"],
      env: baseEnv,
    });
    expect([none.status, none.stdout.toString()]).toEqual([0, ""]);
    // `sh -c 'echo x | roder-runner exec …'`, as the issue wrote it.
    const shell = spawnSync(
      "sh",
      ["-c", `echo x | '${process.execPath}' '${bin}' exec -d '${dest}' -- cat`],
      {
        cwd: work,
        encoding: "utf8",
        env: baseEnv,
      },
    );
    expect(shell.stdout).toBe("x\n");
  });

  it("-i forwards input as it comes: a line-reading program answers each line before the next is sent", async () => {
    const p = start([
      "exec",
      "-i",
      "-d",
      dest,
      "--",
      "sh",
      "-c",
      'while read l; do echo "got $l"; done; echo bye',
    ]);
    p.child.stdin!.write("one\n");
    await p.waitFor(/got one\n/);
    expect(p.out).not.toContain("two");
    p.child.stdin!.write("two\n");
    await p.waitFor(/got two\n/);
    p.child.stdin!.end();
    expect(await p.exited).toBe(0);
    expect(p.out).toBe("got one\ngot two\nbye\n");
  });

  it("-t runs the command on a terminal of our size (COLUMNS/LINES off a terminal)", () => {
    const r = cli(
      ["exec", "-t", "-d", dest, "--", "sh", "-c", "test -t 0 && test -t 1 && echo tty; stty size"],
      {
        input: "",
        env: { COLUMNS: "101", LINES: "33" },
      },
    );
    expect(r.code).toBe(0);
    expect(r.stdout.replace(/\r/g, "")).toBe("tty\n33 101\n");
  });

  it("-t on a real terminal: sized from it, resized on SIGWINCH, input in raw mode", async () => {
    // script(1) gives the CLI a terminal; `stty -F` on it resizes it, and the kernel sends SIGWINCH.
    const marker = `MARK=${randomBytes(6).toString("hex")}`;
    const p = start(
      [
        "exec",
        "-t",
        "-d",
        dest,
        "--env",
        marker,
        "--",
        "sh",
        "-c",
        'echo ready; while read l; do [ "$l" = q ] && break; echo "size $(stty size)"; done',
      ],
      { viaScript: true },
    );
    // "ready" is shown once the command runs and the CLI follows our terminal.
    await p.waitFor(/ready/);
    const pid = readdirSync("/proc").find((d) => {
      try {
        const cmd = readFileSync(`/proc/${d}/cmdline`, "utf8");
        return /^\d+$/.test(d) && cmd.includes(marker) && !cmd.startsWith("script");
      } catch {
        return false;
      }
    });
    const pts = readlinkSync(`/proc/${pid}/fd/1`);
    expect(pts).toMatch(/^\/dev\/pts\/\d+$/);
    let asked = 0;
    /** Resizes our terminal, then sends lines until the command reports the new size (the signal and the
     * input travel separately). */
    const resizeTo = async (cols: number, rows: number) => {
      execFileSync("stty", ["-F", pts, "cols", String(cols), "rows", String(rows)]);
      for (let i = 0; i < 50 && !p.out.includes(`size ${rows} ${cols}`); i++) {
        p.child.stdin!.write("x\r");
        asked += 1;
        await p.waitFor(new RegExp(`(size \\d+ \\d+[^]*){${asked}}`));
      }
      expect(p.out).toContain(`size ${rows} ${cols}`);
    };
    await resizeTo(90, 20);
    await resizeTo(120, 40);
    p.child.stdin!.write("q\r");
    expect(await p.exited).toBe(0);
  });
});

describe("errors say why", () => {
  it("a missing program, a missing working directory: the reason on stderr, 127", () => {
    const missing = cli(["exec", "-d", dest, "--", "nosuchprogram-roder"]);
    expect([missing.code, missing.stdout, missing.stderr]).toEqual([
      127,
      "",
      "nosuchprogram-roder: command not found\n",
    ]);
    const cwd = cli(["exec", "-d", dest, "--cwd", "no/such/dir", "--", "ls"]);
    expect(cwd.code).toBe(127);
    expect(cwd.stderr).toMatch(/working directory does not exist/);
  });

  it("file-system and connection failures are one line naming the path or URL and the errno", async () => {
    const noFile = cli(["cp", "-d", dest, "no-such-file.bin", "runner:x"]);
    expect(noFile.code).toBe(1);
    expect(noFile.stderr).toMatch(
      /^roder-runner: error: cannot stat no-such-file\.bin: no such file or directory \(ENOENT\)\n$/,
    );
    const noDir = cli(["cp", "-d", dest, "runner:x", "no/such/dir/x"]);
    expect(noDir.stderr).toMatch(/^roder-runner: error: cannot access .*no\/such\/dir: .*\(ENOENT\)\n$/);
    const noState = cli(["exec", "-s", "missing-state.json", "--", "true"]);
    expect(noState.stderr.split("\n")[0]).toBe(
      "roder-runner: error: cannot read session state file missing-state.json: no such file or directory (ENOENT)",
    );
    // A port nobody listens on.
    const port = await new Promise<number>((res) => {
      const s = createServer().listen(0, "127.0.0.1", () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => res(p));
      });
    });
    writeFileSync(
      join(work, "http-dead.json"),
      JSON.stringify({ id: "h", provider_id: "http", config: { base_url: `http://127.0.0.1:${port}` } }),
    );
    const conn = cli(["exec", "-d", "http-dead.json", "--", "true"], {
      env: { RODER_RUNNER_HTTP_TOKEN: "tok-abcdefabcdefabcdef" },
    });
    expect(conn.code).toBe(4);
    expect(conn.stderr).toBe(
      `roder-runner: error: http: create session: connection failed: http://127.0.0.1:${port}/sessions: connection refused (ECONNREFUSED)\n`,
    );
    expect(leftWorkspaces()).toEqual([]);
  });
});

describe("state and sessions", () => {
  it("state=$(exec --keep --state-out - -- CMD) gets the state alone; close twice exits 0", () => {
    const sh = spawnSync(
      "sh",
      [
        "-c",
        `state=$('${process.execPath}' '${bin}' exec -d '${dest}' --keep --state-out - -- sh -c 'echo out; echo err >&2; echo kept > f') && printf %s "$state"`,
      ],
      { cwd: work, encoding: "utf8", env: baseEnv },
    );
    expect(sh.status).toBe(0);
    const state = JSON.parse(sh.stdout) as { provider_id: string };
    expect(state.provider_id).toBe("unix-local");
    expect(sh.stderr).toBe("out\nerr\n");
    expect(cli(["exec", "-s", "-", "--", "cat", "f"], { input: sh.stdout }).stdout).toBe("kept\n");
    expect(cli(["close", "-s", "-"], { input: sh.stdout }).code).toBe(0);
    const again = cli(["close", "-s", "-"], { input: sh.stdout });
    expect([again.code, again.stderr]).toEqual([0, ""]);
    expect(cli(["exec", "-s", "-", "--", "true"], { input: sh.stdout }).code).toBe(4);
    expect(leftWorkspaces()).toEqual([]);
  });

  it("leaves no session behind: an unwritable state file, a signal mid-command or mid-copy", async () => {
    symlinkSync(join(work, "victim"), join(work, "planted.json"));
    const planted = cli(["exec", "-d", dest, "--keep", "--state-out", "planted.json", "--", "true"]);
    expect(planted.code).toBe(3);
    expect(planted.stderr).toMatch(/symbolic link/);
    expect(existsSync(join(work, "victim"))).toBe(false);
    expect(leftWorkspaces()).toEqual([]);

    const running = start(["exec", "-d", dest, "--", "sh", "-c", "echo started; sleep 60"]);
    await running.waitFor(/started/);
    running.child.kill("SIGINT");
    expect(await running.exited).toBe(137);
    expect(leftWorkspaces()).toEqual([]);

    // The reader of stdout goes away (`| head`): the command is killed and the session closed.
    const piped = spawnSync(
      "sh",
      ["-c", `'${process.execPath}' '${bin}' exec -d '${dest}' -- yes | head -c 4; echo " $?"`],
      { cwd: work, encoding: "utf8", env: baseEnv, timeout: 60_000 },
    );
    expect(piped.stdout).toBe("y\ny\n 0\n");
    expect(leftWorkspaces()).toEqual([]);

    execFileSync("sh", ["-c", `head -c ${96 << 20} /dev/urandom > '${join(work, "big-src.bin")}'`]);
    const copying = start(["cp", "-d", dest, "big-src.bin", "runner:big.bin"]);
    // Interrupted once the copy is being written in the workspace (an atomic write: a temporary name first).
    for (;;) {
      const ws = leftWorkspaces();
      if (ws.length && readdirSync(join(workspaces, ws[0]!)).length > 0) break;
      if (copying.child.exitCode !== null) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    copying.child.kill("SIGTERM");
    const code = await copying.exited;
    expect([0, 130]).toContain(code);
    expect(leftWorkspaces()).toEqual([]);
  });

  it("a state holding a snapshot restores into a new session, closed at the end without --keep", () => {
    const state = join(work, "snap-src.json");
    expect(
      cli(["exec", "-d", dest, "--keep", "--state-out", state, "--", "sh", "-c", "echo v1 > f"]).code,
    ).toBe(0);
    const ref = JSON.parse(cli(["snapshot", "-s", state]).stdout) as { snapshot_id: string };
    const restorable = { ...JSON.parse(readFileSync(state, "utf8")), snapshot: ref };
    writeFileSync(join(work, "restorable.json"), JSON.stringify(restorable));
    expect(cli(["exec", "-s", "restorable.json", "--", "cat", "f"]).stdout).toBe("v1\n");
    // Only the kept source session is left.
    expect(leftWorkspaces()).toHaveLength(1);
    expect(cli(["snapshot", "rm", ref.snapshot_id]).code).toBe(0);
    expect(cli(["close", "-s", state]).code).toBe(0);
    expect(leftWorkspaces()).toEqual([]);
  });
});

describe("snapshot list, restore, rm", () => {
  it("lists the snapshots taken, restores one into a new session, deletes its archive", () => {
    const state = join(work, "snaps.json");
    expect(
      cli(["exec", "-d", dest, "--keep", "--state-out", state, "--", "sh", "-c", "echo one > f"]).code,
    ).toBe(0);
    const a = JSON.parse(cli(["snapshot", "-s", state]).stdout) as {
      snapshot_id: string;
      metadata: { archive: string };
    };
    expect(cli(["exec", "-s", state, "--", "sh", "-c", "echo two > f"]).code).toBe(0);
    const b = JSON.parse(cli(["snapshot", "-s", state]).stdout) as { snapshot_id: string };
    const list = cli(["snapshot", "list", "--json"]);
    const ids = (JSON.parse(list.stdout) as Array<{ snapshot_id: string }>).map((s) => s.snapshot_id);
    expect(ids).toEqual(expect.arrayContaining([a.snapshot_id, b.snapshot_id]));
    const table = cli(["snapshot", "list"]);
    expect(table.stdout).toMatch(/^SNAPSHOT\s+PROVIDER\s+SIZE\s+CREATED\s+FROM SESSION\n/);
    expect(table.stdout).toContain(a.snapshot_id);

    const restored = cli(["snapshot", "restore", a.snapshot_id]);
    expect(restored.code, restored.stderr).toBe(0);
    const newState = JSON.parse(restored.stdout) as { session_id: string; snapshot: unknown };
    expect(newState.snapshot).toBeNull();
    expect(cli(["exec", "-s", "-", "--", "cat", "f"], { input: restored.stdout }).stdout).toBe("one\n");
    expect(cli(["close", "-s", "-"], { input: restored.stdout }).code).toBe(0);
    // The ref file as `snapshot` printed it works too.
    writeFileSync(join(work, "b-ref.json"), JSON.stringify(b));
    const fromFile = cli(["snapshot", "restore", "b-ref.json", "--state-out", "b-state.json"]);
    expect([fromFile.code, fromFile.stdout]).toEqual([0, ""]);
    expect(cli(["exec", "-s", "b-state.json", "--", "cat", "f"]).stdout).toBe("two\n");
    expect(cli(["close", "-s", "b-state.json"]).code).toBe(0);

    expect(existsSync(a.metadata.archive)).toBe(true);
    expect(cli(["snapshot", "rm", a.snapshot_id]).code).toBe(0);
    expect(existsSync(a.metadata.archive)).toBe(false);
    expect(cli(["snapshot", "list"]).stdout).not.toContain(a.snapshot_id);
    // Deleting again (by the ref file) is not an error; restoring a deleted snapshot is.
    writeFileSync(join(work, "a-ref.json"), JSON.stringify(a));
    expect(cli(["snapshot", "rm", "a-ref.json"]).code).toBe(0);
    const gone = cli(["snapshot", "restore", "a-ref.json"]);
    expect(gone.code).toBe(3);
    expect(gone.stderr).toMatch(/not in this CLI's index/);
    expect(cli(["snapshot", "rm", b.snapshot_id]).code).toBe(0);
    expect(cli(["snapshot", "rm", "nope"]).code).toBe(3);
    expect(cli(["close", "-s", state]).code).toBe(0);
    expect(leftWorkspaces()).toEqual([]);
  });
});

describe("snapshots through a runner server (http)", () => {
  it("take, restore and rm over HTTP: rm deletes it on the server (a restore then fails)", async () => {
    const token = `srv-${randomBytes(12).toString("hex")}`;
    const server = start(["serve", "--port", "0", "--isolation", "none"], {
      env: { RODER_RUNNER_SERVER_TOKEN: token },
    });
    const url = (await server.waitFor(/on (http:\/\/\S+)/))[1]!;
    const env = { RODER_RUNNER_HTTP_TOKEN: token, RODER_RUNNER_HTTP_URL: url };
    writeFileSync(
      join(work, "http.json"),
      JSON.stringify({ id: "h", provider_id: "http", config: { base_url: url } }),
    );
    const state = join(work, "http-state.json");
    const made = await runAsync(
      ["exec", "-d", "http.json", "--keep", "--state-out", state, "--", "sh", "-c", "echo over-http > f"],
      {
        env,
      },
    );
    expect(made.code, made.stderr).toBe(0);
    const taken = await runAsync(["snapshot", "-s", state], { env });
    expect(taken.code, taken.stderr).toBe(0);
    const ref = JSON.parse(taken.stdout) as { snapshot_id: string; provider_id: string };
    expect(ref.provider_id).toBe("http");
    const restored = await runAsync(
      ["snapshot", "restore", ref.snapshot_id, "--state-out", "http-restored.json"],
      {
        env,
      },
    );
    expect(restored.code, restored.stderr).toBe(0);
    expect((await runAsync(["exec", "-s", "http-restored.json", "--", "cat", "f"], { env })).stdout).toBe(
      "over-http\n",
    );
    expect((await runAsync(["close", "-s", "http-restored.json"], { env })).code).toBe(0);
    expect((await runAsync(["close", "-s", "http-restored.json"], { env })).code).toBe(0);
    expect((await runAsync(["snapshot", "rm", ref.snapshot_id], { env })).code).toBe(0);
    writeFileSync(join(work, "http-ref.json"), taken.stdout);
    const again = await runAsync(["snapshot", "restore", "http-ref.json", "--state-out", "http-gone.json"], {
      env,
    });
    expect(again.code).toBe(4);
    expect(again.stderr).toBe(`roder-runner: error: no snapshot '${ref.snapshot_id}' on this server\n`);
    expect((await runAsync(["close", "-s", state], { env })).code).toBe(0);
    server.child.kill("SIGTERM");
    expect(await server.exited).toBe(0);
  }, 120_000);
});

describe("cp: streamed, bounded memory, progress on a terminal", () => {
  it("copies a large file both ways with peak RSS well under its size; quiet when piped", async () => {
    const size = 384 * 1024 * 1024;
    const src = join(work, "large.bin");
    // Written by head: the test itself does not hold the file either.
    execFileSync("sh", ["-c", `head -c ${size} /dev/urandom > '${src}'`]);
    const state = join(work, "cp-state.json");
    expect(cli(["exec", "-d", dest, "--keep", "--state-out", state, "--", "true"]).code).toBe(0);
    /** Runs the CLI and samples its peak RSS (VmHWM, monotonic) until it exits. */
    const peak = async (args: string[]) => {
      const p = start(args);
      let hwm = 0;
      while (p.child.exitCode === null) {
        try {
          const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${p.child.pid}/status`, "utf8"));
          if (m) hwm = Math.max(hwm, Number(m[1]) * 1024);
        } catch {
          // exited between the check and the read
        }
        await new Promise((r) => setTimeout(r, 25));
      }
      return { code: await p.exited, hwm, err: p.err };
    };
    const up = await peak(["cp", "-s", state, src, "runner:large.bin"]);
    expect([up.code, up.err]).toEqual([0, ""]);
    expect(up.hwm).toBeGreaterThan(0);
    expect(up.hwm).toBeLessThan(size * 0.6);
    const back = join(work, "large-back.bin");
    const down = await peak(["cp", "-s", state, "runner:large.bin", back]);
    expect([down.code, down.err]).toEqual([0, ""]);
    expect(down.hwm).toBeLessThan(size * 0.6);
    const sum = (f: string) => execFileSync("sha256sum", [f], { encoding: "utf8" }).split(" ")[0];
    expect(sum(back)).toBe(sum(src));

    // On a terminal: bytes, percent and rate while it runs, then a summary.
    execFileSync("sh", ["-c", `head -c ${16 << 20} /dev/urandom > '${join(work, "mid.bin")}'`]);
    const tty = spawnSync(
      "script",
      ["-qec", `'${process.execPath}' '${bin}' cp -s '${state}' mid.bin runner:mid.bin`, "/dev/null"],
      { cwd: work, encoding: "utf8", env: baseEnv, timeout: 120_000 },
    );
    expect(tty.status, tty.stdout).toBe(0);
    expect(tty.stdout).toMatch(/cp mid\.bin {2}[\d.]+ \w*B \/ 16\.0 MiB {2}\d+% {2}[\d.]+ \w*B\/s/);
    expect(tty.stdout).toMatch(
      /copied mid\.bin → runner:mid\.bin: 16\.0 MiB \(16777216 bytes\) in [\d.]+ s, /,
    );
    expect(cli(["close", "-s", state]).code).toBe(0);
  }, 240_000);
});

describe("through a provider without file streams (E2B, its stand-in)", () => {
  it("cp streams through a command in the sandbox both ways (stdin in, base64 ranges out)", async () => {
    // The stand-in serves from this process: the CLI runs asynchronously (spawnSync would block it).
    e2b = await startE2bStandIn({ backend: createLocalProvider() });
    const env = {
      E2B_API_KEY: e2b.apiKey,
      E2B_API_URL: e2b.apiUrl,
      E2B_SANDBOX_URL: e2b.sandboxUrl,
      E2B_DOMAIN: e2b.domain,
    };
    const e2bDest = join(work, "e2b.json");
    writeFileSync(e2bDest, JSON.stringify({ id: "e", provider_id: "e2b", config: { template: "base" } }));
    const state = join(work, "e2b-state.json");
    const first = await runAsync(
      ["exec", "-d", e2bDest, "--keep", "--state-out", state, "--", "echo", "on e2b"],
      {
        env,
      },
    );
    expect([first.code, first.stdout, first.stderr]).toEqual([0, "on e2b\n", ""]);
    // Piped stdin reaches a command on E2B (the SDK's stdin), with stdin a pipe while the SDK loads.
    const piped = await runAsync(["exec", "-d", e2bDest, "--", "cat"], {
      env,
      input: "through e2b's stdin\n",
    });
    expect([piped.code, piped.stdout]).toEqual([0, "through e2b's stdin\n"]);
    // 20 MiB: past the whole-file size, so it goes through `cat >` and the range server.
    const src = join(work, "e2b-src.bin");
    execFileSync("sh", ["-c", `head -c ${20 << 20} /dev/urandom > '${src}'`]);
    const up = await runAsync(["cp", "-s", state, src, "runner:in/e2b.bin"], { env });
    expect([up.code, up.stderr]).toEqual([0, ""]);
    const back = join(work, "e2b-back.bin");
    const down = await runAsync(["cp", "-s", state, "runner:in/e2b.bin", back], { env });
    expect([down.code, down.stderr]).toEqual([0, ""]);
    const sum = (f: string) => execFileSync("sha256sum", [f], { encoding: "utf8" }).split(" ")[0];
    expect(sum(back)).toBe(sum(src));
    const missing = await runAsync(["cp", "-s", state, "runner:nope.bin", back], { env });
    expect(missing.code).toBe(4);
    expect(missing.stderr).toMatch(/^roder-runner: error: cannot read runner:nope\.bin: .*\n$/);
    expect((await runAsync(["close", "-s", state], { env })).code).toBe(0);
    expect((await runAsync(["close", "-s", state], { env })).code).toBe(0);
    expect(e2b.sandboxes()).toEqual([]);
  }, 180_000);
});
