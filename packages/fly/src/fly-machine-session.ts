import {
  type RemoteRunnerSession,
  type RunnerArtifactExportRequestInput,
  type RunnerArtifactExportResult,
  type RunnerCallOptions,
  type RunnerExportOptions,
  type RunnerPortRequestInput,
  type RunnerPortResult,
  type RunnerSessionState,
  type RunnerSnapshotRef,
  SessionLifecycle,
} from "@roder/runner-contract";
import { type SandboxMountRef, unmountInSandbox } from "@roder/runner-storage";
import type { FlyApi } from "./fly-api.js";
import {
  destroyMachineAndVolume,
  exportFromMachine,
  type FlyMachineInfo,
  machinePortUrl,
  snapshotsUnsupported,
  suspendMachine,
} from "./fly-machine-ops.js";
import { flySessionMetadata } from "./fly-session-metadata.js";

/** What both kinds of Fly session know of their machine and destination. */
export interface FlySessionInfo extends FlyMachineInfo {
  destinationId: string;
  /** Buckets mounted in the machine (rclone + FUSE): unmounted, write-back drained, at close. */
  mounted: SandboxMountRef[];
}

/**
 * What both kinds of Fly session (exec mode: `FlySession`, agent mode: `FlyAgentSession`) are alike: a machine of
 * the app with its state, port URLs, artifact export (run by the session's own commands), suspend and close, and
 * one guard (open, suspended, closed). Each kind adds how its commands and files reach the machine.
 */
export abstract class FlyMachineSession {
  /** Open, suspended (until resumed from its state), closed. */
  protected readonly life: SessionLifecycle;

  constructor(
    protected readonly api: FlyApi,
    readonly info: FlySessionInfo,
  ) {
    this.life = new SessionLifecycle({
      providerId: "fly",
      sessionId: () => info.machineId,
      noun: "machine",
      pausedAs: "suspended",
    });
  }

  /** The session's workspace in the machine. */
  abstract get root(): string;

  /** What the state's metadata holds besides the machine's: the agent session (agent mode), the marker (exec). */
  protected abstract stateFacts(): {
    agent?: { sessionId: string; nonce: string };
    marker?: string | undefined;
  };

  /** What the kind ends inside the machine at close, after the mounts (agent mode: the agent session). */
  protected async endInside(_options?: RunnerCallOptions): Promise<void> {}

  state(): RunnerSessionState {
    return {
      provider_id: "fly",
      session_id: this.info.machineId,
      destination_id: this.info.destinationId,
      snapshot: null,
      metadata: flySessionMetadata({
        machineId: this.info.machineId,
        config: this.info.config,
        workspaceRoot: this.root,
        mounted: this.info.mounted,
        ...this.stateFacts(),
        volumeId: this.info.volumeId,
      }),
    };
  }

  /** A port's public URL: `public_url_template` (the app needs a service for that port). */
  async exposePort(input: RunnerPortRequestInput): Promise<RunnerPortResult> {
    this.life.ensureOpen();
    return machinePortUrl(this.info, input);
  }

  /**
   * The storage package's direct path: the machine hashes the file (or archives the directory) and uploads it
   * with curl to a signed URL that reaches curl through its environment, never argv.
   */
  async exportArtifact(
    this: FlyMachineSession & RemoteRunnerSession,
    input: RunnerArtifactExportRequestInput,
    options?: RunnerExportOptions,
  ): Promise<RunnerArtifactExportResult> {
    this.life.ensureOpen();
    return exportFromMachine(this, this.info, this.root, input, options);
  }

  async snapshot(): Promise<RunnerSnapshotRef | null> {
    return snapshotsUnsupported();
  }

  /**
   * Fly suspend: the machine's memory and file system are snapshotted and its compute stops;
   * `resumeSession(state())` starts it again where it was (mounts, processes and the agent included).
   */
  async pause(options?: RunnerCallOptions): Promise<void> {
    this.life.ensureOpen();
    await suspendMachine(this.api, this.info, options?.signal);
    this.life.markPaused();
  }

  /**
   * Unmounts the buckets (uploads still in rclone's write-back reach the bucket before the machine goes) and
   * ends what runs inside, then stops and destroys the machine (force) and deletes its volume; a suspended
   * machine goes as it is. A machine already gone is fine. Idempotent.
   */
  async close(this: FlyMachineSession & RemoteRunnerSession, options?: RunnerCallOptions): Promise<void> {
    if (this.life.closed) return;
    const mounted = this.info.mounted.splice(0);
    if (!this.life.paused) {
      for (const ref of mounted.reverse()) await unmountInSandbox(this, ref).catch(() => {});
      await this.endInside(options);
    }
    this.life.markClosed();
    await destroyMachineAndVolume(this.api, this.info, options?.signal);
  }
}
