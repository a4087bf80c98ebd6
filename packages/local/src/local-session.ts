import { promises as fs } from "node:fs";
import {
  checkPort,
  parsePortInput,
  type RemoteRunnerSession,
  type RunnerCallOptions,
  type RunnerCommandHandle,
  type RunnerCommandRequestInput,
  type RunnerCommandResult,
  RunnerError,
  type RunnerPortRequestInput,
  type RunnerPortResult,
  type RunnerSessionState,
  type RunnerSnapshotRef,
  type RunnerStartCommandInput,
  SessionLifecycle,
} from "@roder/runner-contract";
import { unmount } from "./local-binds.js";
import {
  attachSessionCommand,
  cancelSessionCommand,
  endSessionCommands,
  startSessionCommand,
} from "./local-commands.js";
import { readRegistryEntry, registryPath, sideDirOf, writeRegistry } from "./local-registry.js";
import {
  endSandbox,
  type NetworkMode,
  type SandboxRecord,
  sandboxAlive,
  startBwrapSandbox,
} from "./local-sandbox.js";
import {
  exportSessionArtifact,
  readSessionFile,
  readSessionFileStream,
  writeSessionFile,
  writeSessionFileStream,
} from "./local-session-files.js";
import {
  checkAborted,
  LOCAL_PROVIDER_ID,
  type LocalRuntime,
  type LocalSessionInfo,
  runnerRootOf,
  type SessionContext,
  sandboxScopeOf,
} from "./local-session-info.js";
import { encodeSessionMetadata } from "./local-session-metadata.js";
import { forwardPort } from "./local-slirp.js";
import { takeSnapshot } from "./local-snapshots.js";
import { tagPathFor, updateTag } from "./local-tags.js";

export { LOCAL_PROVIDER_ID } from "./local-session-info.js";

/**
 * A session of the `unix-local` provider: a workspace on this host, its commands held by its sandbox (bwrap) or
 * its cgroup. Its commands (local-commands.ts), files (local-session-files.ts) and snapshots
 * (local-snapshots.ts) are done by the modules of each; the session keeps its sandbox alive, its state and close.
 */
export class LocalSession implements RemoteRunnerSession {
  private readonly unmounts: Array<() => Promise<void>> = [];
  /** Open until closed: every method but close refuses after (`SessionNotFoundError`). */
  private readonly life = new SessionLifecycle({
    providerId: LOCAL_PROVIDER_ID,
    sessionId: () => this.info.sessionId,
  });
  private restarts = 0;
  /** What the session's modules share. */
  private readonly ctx: SessionContext;

  constructor(
    readonly info: LocalSessionInfo,
    private readonly runtime: LocalRuntime,
    realRoot: string,
  ) {
    this.ctx = {
      info,
      runtime,
      confinement: {
        runnerRoot: this.runnerRoot,
        root: info.workspaceRoot,
        realRoot,
        readRoots: info.config.read_roots,
      },
      liveSandbox: () => this.liveSandbox(),
    };
  }

  /** The workspace as commands see it: `workspace_path` under bwrap, else its host path. */
  get runnerRoot(): string {
    return runnerRootOf(this.info);
  }

  /** Registers an unmount to run on close (bucket mounts). */
  addUnmount(fn: () => Promise<void>): void {
    this.unmounts.push(fn);
  }

  /** The network commands have (see `network` in the destination config). */
  get network(): NetworkMode {
    return this.info.config.network ?? "host";
  }

  /**
   * Whether the file API and `cwd` address the sandbox's whole view: under bwrap, or without isolation on a host
   * its operator declared to be the sandbox (`hostIsSandbox`, a provider setting: no destination or state sets it).
   */
  get sandboxScope(): boolean {
    return sandboxScopeOf(this.info, this.runtime);
  }

  /** The record in the registry (another process may have restarted the sandbox), else ours. */
  private async currentRecord(): Promise<SandboxRecord | null> {
    const entry = await readRegistryEntry(this.info.registryDir, this.info.sessionId);
    if (entry && entry.workspace_root === this.info.workspaceRoot && entry.sandbox) return entry.sandbox;
    return this.info.sandbox;
  }

  /**
   * The session's sandbox, alive. If it has ended (killed, or the machine restarted), a new one is started over
   * the same workspace (its processes and /tmp are gone) and `state().metadata.sandbox_restarts` says so.
   */
  private async liveSandbox(): Promise<SandboxRecord | null> {
    const rec = this.info.sandbox;
    if (this.info.config.isolation !== "bwrap") return rec;
    if (rec?.kind === "bwrap" && sandboxAlive(rec)) return rec;
    const latest = await this.currentRecord();
    if (latest && latest.kind === "bwrap" && sandboxAlive(latest)) {
      this.info.sandbox = latest;
      return latest;
    }
    this.info.sandbox = await this.startSandbox();
    this.restarts += 1;
    await writeRegistry(this.info);
    return this.info.sandbox;
  }

  /** Starts the session's bubblewrap sandbox (createSession, and after the sandbox ended). */
  async startSandbox(): Promise<SandboxRecord & { kind: "bwrap" }> {
    const { bwrap, setpriv, nsenter } = this.runtime;
    if (!bwrap || !setpriv || !nsenter)
      throw new RunnerError(
        "missing_dependency",
        "isolation 'bwrap' needs bubblewrap, setpriv and nsenter: apt-get install bubblewrap util-linux",
      );
    return startBwrapSandbox({
      bwrap,
      workspace: this.info.workspaceRoot,
      mountAt: this.runnerRoot,
      readRoots: this.info.config.read_roots,
      network: this.network,
      sideDir: sideDirOf(this.info.registryDir, this.info.sessionId),
      slirp4netns: this.runtime.slirp4netns,
    });
  }

  state(): RunnerSessionState {
    return {
      provider_id: LOCAL_PROVIDER_ID,
      session_id: this.info.sessionId,
      destination_id: this.info.destinationId,
      snapshot: null,
      metadata: encodeSessionMetadata(this.info, {
        sandboxScope: this.sandboxScope,
        restarts: this.restarts,
      }),
    };
  }

  // What the session's modules do, behind its guard.
  startCommand = this.life.guard((input: RunnerStartCommandInput, options?: RunnerCallOptions) =>
    startSessionCommand(this.ctx, input, options),
  );
  readFile: RemoteRunnerSession["readFile"] = this.life.guard((r, o) => readSessionFile(this.ctx, r, o));
  writeFile: RemoteRunnerSession["writeFile"] = this.life.guard((i, o) => writeSessionFile(this.ctx, i, o));
  readFileStream: NonNullable<RemoteRunnerSession["readFileStream"]> = this.life.guard((r, o) =>
    readSessionFileStream(this.ctx, r, o),
  );
  writeFileStream: NonNullable<RemoteRunnerSession["writeFileStream"]> = this.life.guard((r, body, o) =>
    writeSessionFileStream(this.ctx, r, body, o),
  );
  exportArtifact: RemoteRunnerSession["exportArtifact"] = this.life.guard((i, o) =>
    exportSessionArtifact(this.ctx, i, o),
  );

  async attachCommand(commandId: string, options?: RunnerCallOptions): Promise<RunnerCommandHandle> {
    this.life.ensureOpen();
    checkAborted(options?.signal, "attachCommand");
    return attachSessionCommand(this.info.sessionId, commandId);
  }

  async runCommand(
    request: RunnerCommandRequestInput,
    options?: RunnerCallOptions,
  ): Promise<RunnerCommandResult> {
    const handle = await this.startCommand(request, options);
    return handle.wait();
  }

  async cancelCommand(commandId: string): Promise<boolean> {
    return cancelSessionCommand(this.info.sessionId, commandId);
  }

  async exposePort(input: RunnerPortRequestInput): Promise<RunnerPortResult> {
    this.life.ensureOpen();
    const request = parsePortInput(input);
    checkPort(request.port);
    const sandbox = await this.liveSandbox();
    if (sandbox?.kind !== "bwrap") return { port: request.port, url: `http://127.0.0.1:${request.port}` };
    const before = Object.keys(sandbox.forwards).length;
    const hostPort = await forwardPort(sandbox, request.port, LOCAL_PROVIDER_ID);
    if (Object.keys(sandbox.forwards).length !== before) await writeRegistry(this.info);
    return { port: request.port, url: `http://127.0.0.1:${hostPort}` };
  }

  async snapshot(options?: RunnerCallOptions): Promise<RunnerSnapshotRef> {
    this.life.ensureOpen();
    checkAborted(options?.signal, "snapshot");
    return takeSnapshot(this.info);
  }

  async close(): Promise<void> {
    if (!this.life.markClosed()) return;
    await endSessionCommands(this.info.sessionId);
    // The sandbox (or the session's cgroup) first: everything the session started ends, and no process of it
    // holds a mount below the workspace when the mounts go.
    await endSandbox(await this.currentRecord(), this.info.sessionId);
    await fs.rm(sideDirOf(this.info.registryDir, this.info.sessionId), { recursive: true, force: true });
    for (const fn of this.unmounts.splice(0).reverse()) await fn().catch(() => {});
    for (const target of [...this.info.binds].reverse()) await unmount(target);
    await fs.rm(registryPath(this.info.registryDir, this.info.sessionId), { force: true });
    // The owner tag goes after the workspace (a failed removal leaves it for the sweeper); a kept workspace
    // keeps a `kept` tag, which the sweeper leaves alone.
    const tag = tagPathFor(this.info.workspaceRoot);
    if (this.info.config.delete_on_close) {
      const removed = await fs
        .rm(this.info.workspaceRoot, { recursive: true, force: true })
        .then(() => true)
        .catch(() => false);
      if (removed) await fs.rm(tag, { force: true }).catch(() => {});
    } else {
      await updateTag(tag, { state: "kept", expires_at: null }).catch(() => {});
    }
  }
}
