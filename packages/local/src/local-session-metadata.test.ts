import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RunnerError, type RunnerSessionState, SessionNotFoundError } from "@roder/runner-contract";
import { afterAll, describe, expect, it } from "vitest";
import { createLocalProvider } from "./local-provider.js";
import { decodeSessionMetadata } from "./local-session-metadata.js";

const base = mkdtempSync(join(tmpdir(), "roder-meta-"));
afterAll(() => rmSync(base, { recursive: true, force: true }));
const provider = createLocalProvider({
  root: join(base, "ws"),
  registryDir: join(base, "registry"),
  snapshotDir: join(base, "snapshots"),
});
const dest = { config: { isolation: "none" } };
const text = (b: Uint8Array) => new TextDecoder().decode(b);

async function thrown(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  throw new Error("expected a failure");
}

/**
 * The state file of a session as the runner wrote it before `metadata.version` existed: the same fields, no
 * version, written to disk and read back as a caller keeps it.
 */
function unversionedStateFile(state: RunnerSessionState): RunnerSessionState {
  const m = state.metadata as Record<string, unknown>;
  const previous = {
    provider_id: state.provider_id,
    session_id: state.session_id,
    destination_id: state.destination_id,
    snapshot: state.snapshot,
    metadata: {
      workspace_root: m.workspace_root,
      host_root: m.host_root,
      config: m.config,
      binds: m.binds,
      read_only_entries: m.read_only_entries,
      mounts: m.mounts,
      snapshot_dir: m.snapshot_dir,
      registry_dir: m.registry_dir,
      process_tracking: m.process_tracking,
      file_scope: m.file_scope,
    },
  };
  const file = join(base, `state-${state.session_id}.json`);
  writeFileSync(file, JSON.stringify(previous));
  return JSON.parse(JSON.stringify(previous)) as RunnerSessionState;
}

describe("unix-local: state().metadata is a versioned schema", () => {
  it("a session's state says version 1, and decodes to what it says", async () => {
    const s = await provider.createSession(dest);
    try {
      const state = s.state();
      const meta = state.metadata as Record<string, unknown>;
      expect(meta.version).toBe(1);
      expect(decodeSessionMetadata(JSON.parse(JSON.stringify(meta)))).toEqual(meta);
    } finally {
      await s.close();
    }
  });

  it("a state file written before the version (no `version`) resumes as version 1", async () => {
    const s = await provider.createSession(dest);
    try {
      await s.writeFile({ path: "before.txt", contents: "written before" });
      const old = unversionedStateFile(s.state());
      expect(old.metadata).not.toHaveProperty("version");
      const resumed = await provider.resumeSession(old);
      expect(resumed.info.workspaceRoot).toBe(s.info.workspaceRoot);
      expect(text((await resumed.readFile({ path: "before.txt" })).contents)).toBe("written before");
      expect((resumed.state().metadata as { version: number }).version).toBe(1);
    } finally {
      await s.close();
    }
  });

  it("an unversioned state with a snapshot resumes into a new workspace with the snapshot's files", async () => {
    const s = await provider.createSession(dest);
    let resumed: Awaited<ReturnType<typeof provider.resumeSession>> | undefined;
    try {
      await s.writeFile({ path: "snap.txt", contents: "in the snapshot" });
      const snapshot = await s.snapshot();
      const old = unversionedStateFile({ ...s.state(), snapshot });
      resumed = await provider.resumeSession(old);
      expect(resumed.info.sessionId).not.toBe(s.info.sessionId);
      expect(text((await resumed.readFile({ path: "snap.txt" })).contents)).toBe("in the snapshot");
    } finally {
      await resumed?.close();
      await s.close();
    }
  });

  it("a malformed or unknown metadata is a typed invalid_request, and nothing is touched", async () => {
    const s = await provider.createSession(dest);
    try {
      await s.writeFile({ path: "keep.txt", contents: "kept" });
      const state = s.state();
      const meta = state.metadata as Record<string, unknown>;
      const cases: Array<[Record<string, unknown> | null | string, RegExp]> = [
        [{ ...meta, version: 2 }, /version 1/],
        [{ ...meta, version: "1" }, /version 1/],
        [{ ...meta, mounts: "all of them" }, /unix-local session state/],
        [{ ...meta, mounts: [{ name: "m" }] }, /unix-local session state/],
        [{ ...meta, workspace_root: "relative/path" }, /unix-local session state/],
        [{ ...meta, config: { isolation: "chroot" } }, /unix-local session state/],
        [{ ...meta, sandbox_restarts: -1 }, /unix-local session state/],
        [null, /unix-local session state/],
        ["a string", /unix-local session state/],
      ];
      for (const [metadata, message] of cases) {
        const e = await thrown(provider.resumeSession({ ...state, metadata } as RunnerSessionState));
        expect(RunnerError.isInstance(e) && e.code, String(e)).toBe("invalid_request");
        expect((e as Error).message).toMatch(message);
      }
      // A snapshot ref whose metadata names no archive is refused with a typed error too.
      const e = await thrown(
        provider.resumeSession({
          ...state,
          snapshot: { provider_id: "unix-local", snapshot_id: "snap-x", metadata: { archive: 7 } },
        }),
      );
      expect(RunnerError.isInstance(e) && e.code, String(e)).toBe("invalid_request");
      expect(text((await s.readFile({ path: "keep.txt" })).contents)).toBe("kept");
    } finally {
      await s.close();
    }
  });

  it("a registry record that is not one of the runner's is no session (SessionNotFoundError)", async () => {
    const registryDir = join(base, "registry-corrupt");
    const p = createLocalProvider({
      root: join(base, "ws"),
      registryDir,
      snapshotDir: join(base, "snapshots"),
    });
    const s = await p.createSession(dest);
    try {
      const state = s.state();
      expect((await p.resumeSession(state)).info.sessionId).toBe(s.info.sessionId);
      writeFileSync(
        join(registryDir, `${s.info.sessionId}.json`),
        JSON.stringify({ workspace_root: s.info.workspaceRoot, binds: "/", read_only_entries: [] }),
      );
      expect(SessionNotFoundError.isInstance(await thrown(p.resumeSession(state)))).toBe(true);
    } finally {
      await s.close();
    }
  });
});
