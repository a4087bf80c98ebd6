import { type ChildProcess, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import {
  PathOutsideWorkspaceError,
  type RunnerDestination,
  RunnerError,
  sweepExpiredSessions,
} from "@roder/runner-contract";
import { runScript } from "@roder/runner-testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { which } from "./local-isolation.js";
import { createLocalProvider } from "./local-provider.js";
import { createLocalSweeper } from "./local-sweeper.js";

const repo = resolve(import.meta.dirname, "../../..");
let root: string;
let scratch: string;

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), "roder-sweep-root-"));
  scratch = mkdtempSync(join(tmpdir(), "roder-sweep-scratch-"));
});
afterAll(() => {
  for (const p of [root, `${root}.registry`, scratch]) rmSync(p, { recursive: true, force: true });
});

const dest = (config: Record<string, unknown> = {}): RunnerDestination => ({
  id: "d",
  provider_id: "unix-local",
  config,
  default_manifest: { entries: [], mounts: [] },
});
const provider = (owner: string) =>
  createLocalProvider({ root, owner, registryDir: join(scratch, "registry") });

/** Runs the crash fixture and waits until it died of SIGKILL. */
async function crashingCaller(env: Record<string, string>): Promise<void> {
  const run = await runScript("packages/local/src/__fixtures__/crash-mid-create.ts", {
    cwd: repo,
    env: { ROOT: root, ...env },
  });
  expect(run.signal, run.stderr).toBe("SIGKILL");
  expect(run.stderr).toBe("");
}

const sessionEntries = () => readdirSync(root).filter((n) => n.startsWith("local-"));
const fuse = which("rclone") !== null && which("fusermount3") !== null && existsSync("/dev/fuse");
const mountedAt = (path: string) => readFileSync("/proc/self/mountinfo", "utf8").includes(` ${path} `);

describe("local owner tags", () => {
  it("writes the tag beside the workspace (not inside), atomically, and removes it on close", async () => {
    const s = await provider("tagger").createSession(dest({ ttl_seconds: 120 }));
    const ws = s.info.workspaceRoot;
    expect(ws).toBe(join(root, s.info.sessionId));
    const tag = JSON.parse(readFileSync(`${ws}.session.json`, "utf8"));
    expect(tag).toMatchObject({
      session_id: s.info.sessionId,
      owner: "tagger",
      pid: process.pid,
      state: "ready",
    });
    expect(Date.parse(tag.expires_at) - Date.parse(tag.created_at)).toBe(120_000);
    expect(readdirSync(root).filter((n) => n.startsWith(".roder-tmp-"))).toEqual([]);
    const ls = await s.runCommand({ command_id: "ls", program: "ls", args: ["-a"], timeout_ms: 10_000 });
    expect(ls.stdout).not.toContain("session.json");
    await s.close();
    expect(existsSync(ws)).toBe(false);
    expect(existsSync(`${ws}.session.json`)).toBe(false);
  });

  it("keeps a kept workspace's tag as 'kept', which the sweeper never lists", async () => {
    const s = await provider("keeper").createSession(dest({ delete_on_close: false, ttl_seconds: 1 }));
    await s.close();
    expect(JSON.parse(readFileSync(`${s.info.workspaceRoot}.session.json`, "utf8")).state).toBe("kept");
    const sweeper = createLocalSweeper({ root, orphanGraceMs: 0 });
    expect(await sweeper.listOwnedSessions({ owner: "keeper" })).toEqual([]);
    rmSync(s.info.workspaceRoot, { recursive: true });
    rmSync(`${s.info.workspaceRoot}.session.json`);
  });
});

describe("local sweeper", () => {
  it("removes exactly what SIGKILLed callers left, and neither another owner's nor a live unexpired session", async () => {
    const other = await provider("someone-else").createSession(dest({ ttl_seconds: 1 }));
    const live = await provider("crashy").createSession(dest({ ttl_seconds: 3600 }));
    const manifest = join(scratch, "manifest");
    mkdirSync(manifest);
    for (let i = 0; i < 3000; i++) writeFileSync(join(manifest, `f${i}`), String(i));

    const known = new Set(sessionEntries());
    await crashingCaller({ OWNER: "crashy", CRASH: "mid-create", MANIFEST_SOURCE: manifest });
    const midCreate = sessionEntries().find((n) => !known.has(n) && !n.endsWith(".json"))!;
    expect(midCreate).toBeDefined();
    for (const n of sessionEntries()) known.add(n);
    await crashingCaller({ OWNER: "crashy", CRASH: "after-create", TTL_SECONDS: "60" });
    const afterCreate = sessionEntries().find((n) => !known.has(n) && !n.endsWith(".json"))!;
    expect(afterCreate).toBeDefined();
    expect(existsSync(join(`${root}.registry`, `${afterCreate}.json`))).toBe(true);

    // A FUSE mount the dead caller left inside its workspace: unmounted first, its data untouched.
    let rclone: ChildProcess | undefined;
    const bucket = join(scratch, "bucket");
    const mountPoint = join(root, midCreate, "bucket");
    if (fuse) {
      mkdirSync(bucket);
      writeFileSync(join(bucket, "precious"), "do not delete");
      mkdirSync(mountPoint);
      rclone = spawn("rclone", ["mount", bucket, mountPoint], {
        env: { ...process.env, RCLONE_CONFIG: "/dev/null" },
        stdio: "ignore",
      });
      for (let i = 0; i < 100 && !mountedAt(mountPoint); i++) await new Promise((r) => setTimeout(r, 100));
      expect(mountedAt(mountPoint)).toBe(true);
    }

    const sweeper = createLocalSweeper({ root });
    const listed = await sweeper.listOwnedSessions({ owner: "crashy" });
    expect(listed.map((s) => [s.session_id, s.state]).sort()).toEqual(
      [
        [midCreate, "abandoned"],
        [afterCreate, "ready"],
        [live.info.sessionId, "ready"],
      ].sort(),
    );

    // Now: only the abandoned create is due (it expires at its creation; nobody ever got it).
    const first = await sweepExpiredSessions(sweeper, { owner: "crashy" });
    expect(first.errors).toEqual([]);
    expect(first.removed).toEqual([midCreate]);
    expect(existsSync(join(root, midCreate))).toBe(false);
    expect(existsSync(join(root, `${midCreate}.session.json`))).toBe(false);
    if (fuse) {
      expect(mountedAt(mountPoint)).toBe(false);
      expect(readFileSync(join(bucket, "precious"), "utf8")).toBe("do not delete");
      await new Promise((r) => (rclone!.exitCode !== null ? r(null) : rclone!.on("exit", r)));
    }

    // Two minutes later the after-create leak (ttl 60 s) is due too; the live session (ttl 1 h) is not.
    const second = await sweepExpiredSessions(sweeper, {
      owner: "crashy",
      now: new Date(Date.now() + 120_000),
    });
    expect(second.removed).toEqual([afterCreate]);
    expect(existsSync(join(root, afterCreate))).toBe(false);
    expect(existsSync(join(root, `${afterCreate}.session.json`))).toBe(false);
    expect(existsSync(join(`${root}.registry`, `${afterCreate}.json`))).toBe(false);

    // Left: the live session (still usable) and another owner's expired one.
    expect(sessionEntries().sort()).toEqual(
      [
        live.info.sessionId,
        `${live.info.sessionId}.session.json`,
        other.info.sessionId,
        `${other.info.sessionId}.session.json`,
      ].sort(),
    );
    const echo = await live.runCommand({
      command_id: "e",
      program: "echo",
      args: ["ok"],
      timeout_ms: 10_000,
    });
    expect(echo.stdout).toBe("ok\n");
    expect((await sweepExpiredSessions(sweeper, { owner: "someone-else" })).removed).toEqual([
      other.info.sessionId,
    ]);
    await live.close();
    await other.close();
    expect(sessionEntries()).toEqual([]);
  }, 120_000);

  it("lists untagged session dirs past the grace period as orphaned, and removes nothing outside the root", async () => {
    const old = `local-${randomUUID()}`;
    const fresh = `local-${randomUUID()}`;
    mkdirSync(join(root, old));
    writeFileSync(join(root, old, "partial"), "x");
    const past = new Date(Date.now() - 3600_000);
    utimesSync(join(root, old), past, past);
    mkdirSync(join(root, fresh));
    mkdirSync(join(root, "not-a-session"));
    const outside = join(scratch, "outside");
    mkdirSync(outside);
    writeFileSync(join(outside, "keep"), "k");
    const link = `local-${randomUUID()}`;
    symlinkSync(outside, join(root, link));

    const sweeper = createLocalSweeper({ root, orphanGraceMs: 60_000 });
    const found = await sweeper.listOwnedSessions({ owner: "anyone" });
    expect(found.map((s) => [s.session_id, s.state])).toEqual([[old, "orphaned"]]);
    const result = await sweepExpiredSessions(sweeper, { owner: "anyone" });
    expect(result.removed).toEqual([old]);
    expect(existsSync(join(root, old))).toBe(false);
    expect(existsSync(join(root, fresh))).toBe(true);
    expect(existsSync(join(root, "not-a-session"))).toBe(true);

    const refused = await sweeper.destroySession(link).catch((e) => e);
    expect(PathOutsideWorkspaceError.isInstance(refused)).toBe(true);
    expect(readFileSync(join(outside, "keep"), "utf8")).toBe("k");
    const traversal = await sweeper.destroySession("../outside").catch((e) => e);
    expect(RunnerError.isInstance(traversal) && traversal.code).toBe("invalid_request");
    expect(existsSync(outside)).toBe(true);
    await sweeper.destroySession(`local-${randomUUID()}`); // unknown: a no-op
    for (const n of [fresh, "not-a-session", link]) rmSync(join(root, n), { recursive: true });
  });
});
