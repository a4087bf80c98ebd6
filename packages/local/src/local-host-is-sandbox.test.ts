import { execFileSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  InvalidDestinationConfigError,
  PathOutsideWorkspaceError,
  type RemoteRunnerSession,
  RunnerError,
} from "@roder/runner-contract";
import { type S3Emulator, startS3Emulator } from "@roder/runner-testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLocalProvider } from "./local-provider.js";

// Issue 23: `hostIsSandbox` is the operator's word that this host is the sandbox (a Fly machine running the
// agent): sessions without isolation then address the host's whole view. It is a provider setting only: no
// destination, state or client reaches it, and without it nothing changes.
let s3: S3Emulator;
const opened: RemoteRunnerSession[] = [];
const scratch: string[] = [];
beforeAll(async () => {
  s3 = await startS3Emulator({ buckets: ["his-out"] });
}, 60_000);
afterAll(async () => {
  for (const s of opened) await s.close().catch(() => {});
  for (const p of scratch) rmSync(p, { recursive: true, force: true });
  await s3?.stop();
});

const env = () => ({
  PATH: process.env.PATH,
  RODER_SECRET_HIS_ACCESS_KEY_ID: "S3RVER",
  RODER_SECRET_HIS_SECRET_ACCESS_KEY: "S3RVER",
});
const artifacts = () => ({ uri: "s3://his-out/x", credentials: { id: "his" }, endpoint: s3.endpoint });
const thrown = (fn: () => Promise<unknown>) =>
  fn().then(
    () => null,
    (e: unknown) => e,
  );
const text = (b: Uint8Array) => new TextDecoder().decode(b);
async function collect(body: AsyncIterable<Uint8Array>): Promise<string> {
  const parts: Buffer[] = [];
  for await (const c of body) parts.push(Buffer.from(c));
  return Buffer.concat(parts).toString("utf8");
}
/** A fresh path in the host's /tmp, removed at the end. */
function tmpPath(name: string): string {
  const p = join(tmpdir(), `roder-his-${name}-${randomUUID()}`);
  scratch.push(p);
  return p;
}

describe("hostIsSandbox: this host is the sandbox", () => {
  it("the file API, streams, export and cwd reach any path of the host; relative paths are the workspace's", async () => {
    const provider = createLocalProvider({ env: env(), hostIsSandbox: true });
    expect(provider.limits().file_scope).toBe("sandbox");
    const s = await provider.createSession({ config: { isolation: "none", artifacts: artifacts() } });
    opened.push(s);
    expect((s.state().metadata as { file_scope: string }).file_scope).toBe("sandbox");

    // /tmp through the file API, read by a command, and back; parents are made.
    const p = tmpPath("file");
    await s.writeFile({ path: `${p}/deep/x`, contents: "from the api" });
    expect(readFileSync(`${p}/deep/x`, "utf8")).toBe("from the api");
    const seen = await s.runCommand({
      command_id: "c1",
      program: "sh",
      args: ["-c", `cat ${p}/deep/x; printf back > ${p}/deep/y`],
    });
    expect(seen.stdout).toBe("from the api");
    expect(text((await s.readFile({ path: `${p}/deep/y` })).contents)).toBe("back");
    expect((await s.readFile({ path: "/etc/hostname" })).contents.length).toBeGreaterThan(0);

    // A command whose cwd is /tmp; relative paths stay the workspace's, `..` climbs the host's own tree.
    const cwd = await s.runCommand({ command_id: "c2", program: "pwd", cwd: "/tmp" });
    expect(cwd.stdout.trim()).toBe("/tmp");
    await s.writeFile({ path: "rel.txt", contents: "in the workspace" });
    const root = (s.state().metadata as { workspace_root: string }).workspace_root;
    expect(readFileSync(join(root, "rel.txt"), "utf8")).toBe("in the workspace");
    expect(text((await s.readFile({ path: `../../../../../..${p}/deep/x` })).contents)).toBe("from the api");

    // Streams both ways, with a range.
    await s.writeFileStream!(
      { path: `${p}/stream` },
      (async function* () {
        yield new TextEncoder().encode("0123");
        yield new TextEncoder().encode("456789");
      })(),
    );
    const r = await s.readFileStream!({ path: `${p}/stream`, offset: 4, length: 3 });
    expect([r.size, r.length, await collect(r.body)]).toEqual([10, 3, "456"]);

    // A symlink in the workspace leading out is followed (there is no outside), as a cwd too.
    await s.runCommand({ command_id: "c3", program: "ln", args: ["-s", `${p}/deep`, "out-link"] });
    expect(text((await s.readFile({ path: "out-link/x" })).contents)).toBe("from the api");
    const viaLink = await s.runCommand({
      command_id: "c4",
      program: "sh",
      args: ["-c", "cat x"],
      cwd: "out-link",
    });
    expect(viaLink.stdout).toBe("from the api");

    // Export of a file and of a directory outside the workspace.
    const file = await s.exportArtifact({ path: `${p}/deep/x`, recursive: false });
    expect(await (await fetch(file.url!)).text()).toBe("from the api");
    const dir = await s.exportArtifact({ path: `${p}/deep`, recursive: true });
    const tgz = tmpPath("tgz");
    writeFileSync(tgz, Buffer.from(await (await fetch(dir.url!)).arrayBuffer()));
    expect(execFileSync("tar", ["-tzf", tgz], { encoding: "utf8" }).split("\n").sort()).toContain("./x");
  }, 120_000);

  it("keeps the protections that still mean something: atomic writes, no FIFO, no write over a directory", async () => {
    const s = await createLocalProvider({ env: env(), hostIsSandbox: true }).createSession({
      config: { isolation: "none" },
    });
    opened.push(s);
    const p = tmpPath("guard");
    mkdirSync(p);
    execFileSync("mkfifo", [`${p}/fifo`]);
    // A FIFO is refused at once (never blocks), a directory is no file, a missing file is not_found.
    for (const [path, code] of [
      [`${p}/fifo`, "not_a_regular_file"],
      [p, "is_a_directory"],
      [`${p}/missing`, "not_found"],
    ] as const) {
      const e = await thrown(() => s.readFile({ path }));
      expect(RunnerError.isInstance(e) && e.code, `${path}: ${e}`).toBe(code);
    }
    for (const path of [p, "/"]) {
      const e = await thrown(() => s.writeFile({ path, contents: "x" }));
      expect(RunnerError.isInstance(e) && e.code, `${path}: ${e}`).toBe("is_a_directory");
    }
    // A write whose stream fails leaves the old file, and no temporary file beside it.
    writeFileSync(`${p}/keep`, "old");
    const w = await thrown(() =>
      s.writeFileStream!(
        { path: `${p}/keep` },
        (async function* () {
          yield new Uint8Array(1024);
          throw new Error("source failed");
        })(),
      ),
    );
    expect(w).toBeInstanceOf(Error);
    expect(readFileSync(`${p}/keep`, "utf8")).toBe("old");
    expect(execFileSync("ls", ["-A", p], { encoding: "utf8" }).split("\n").filter(Boolean).sort()).toEqual([
      "fifo",
      "keep",
    ]);
    // A write over a symlink replaces the link; it never writes through it.
    writeFileSync(`${p}/target`, "untouched");
    execFileSync("ln", ["-s", `${p}/target`, `${p}/link`]);
    await s.writeFile({ path: `${p}/link`, contents: "new" });
    expect(readFileSync(`${p}/target`, "utf8")).toBe("untouched");
    expect(readFileSync(`${p}/link`, "utf8")).toBe("new");
    // NUL bytes are refused before anything runs.
    expect(
      RunnerError.isInstance(await thrown(() => s.writeFile({ path: "/tmp/a\u0000b", contents: "" }))),
    ).toBe(true);
  });
});

describe("without hostIsSandbox, a session without isolation stays confined", () => {
  async function expectConfined(s: RemoteRunnerSession) {
    const p = tmpPath("confined");
    expect((s.state().metadata as { file_scope: string }).file_scope).toBe("workspace");
    for (const attempt of [
      () => s.writeFile({ path: p, contents: "x" }),
      () => s.readFile({ path: "/etc/hostname" }),
      () => s.runCommand({ command_id: randomUUID(), program: "true", cwd: "/tmp" }),
      () => s.writeFileStream!({ path: p }, (async function* () {})()),
      () => s.readFileStream!({ path: "/etc/hostname" }),
    ]) {
      const e = await thrown(attempt);
      expect(PathOutsideWorkspaceError.isInstance(e), String(e)).toBe(true);
    }
    expect(existsSync(p)).toBe(false);
  }

  it("by default (limits say the destination decides)", async () => {
    const provider = createLocalProvider({ env: env() });
    expect(provider.limits().file_scope).toBe("destination");
    const s = await provider.createSession({ config: { isolation: "none" } });
    opened.push(s);
    await expectConfined(s);
  });

  it("a destination cannot ask for it, under any spelling", async () => {
    const provider = createLocalProvider({ env: env() });
    for (const config of [
      { isolation: "none", host_is_sandbox: true },
      { isolation: "none", hostIsSandbox: true },
      { isolation: "none", file_scope: "sandbox" },
    ]) {
      const e = await thrown(() => provider.createSession({ config }));
      expect(InvalidDestinationConfigError.isInstance(e), `${JSON.stringify(config)}: ${e}`).toBe(true);
    }
    const bad = (() => {
      try {
        createLocalProvider({ hostIsSandbox: "yes" as never });
      } catch (e) {
        return e;
      }
    })();
    expect(RunnerError.isInstance(bad) && bad.code).toBe("invalid_request");
  });

  it("a state cannot carry it: resumed by a provider without it, a session is confined, whatever the state says", async () => {
    const wide = createLocalProvider({ env: env(), hostIsSandbox: true });
    const s = await wide.createSession({ config: { isolation: "none" } });
    opened.push(s);
    const narrow = createLocalProvider({ env: env() });
    // The state of a host-is-sandbox session, as is (it says file_scope "sandbox"), and with the setting forged
    // into its config: the first is resumed confined, the second refused.
    const state = s.state();
    expect((state.metadata as { file_scope: string }).file_scope).toBe("sandbox");
    await expectConfined(await narrow.resumeSession(state));
    const meta = state.metadata as { config: Record<string, unknown> };
    const forged = { ...state, metadata: { ...meta, config: { ...meta.config, host_is_sandbox: true } } };
    const e = await thrown(() => narrow.resumeSession(forged));
    expect(RunnerError.isInstance(e) && e.code, String(e)).toBe("invalid_request");
    // And a state never narrows or widens the provider's own word: the wide provider resumes it wide.
    const again = await wide.resumeSession(state);
    expect((again.state().metadata as { file_scope: string }).file_scope).toBe("sandbox");
  });
});
