import { CancelledError, type EnvSource, type RunnerMount } from "@roder/runner-contract";
import type { LocalDestinationConfig } from "./local-config.js";
import type { Confinement } from "./local-fs.js";
import type { SandboxRecord } from "./local-sandbox.js";

export const LOCAL_PROVIDER_ID = "unix-local";

/** What a session needs to live and to be resumed: all of it goes into `state().metadata`; no secrets. */
export interface LocalSessionInfo {
  sessionId: string;
  destinationId: string;
  workspaceRoot: string;
  config: LocalDestinationConfig;
  /** Mount points to undo on close (bind mounts and read-only manifest entries), innermost last. */
  binds: string[];
  /** Manifest entry targets (absolute) that are read-only. */
  readOnlyEntries: string[];
  /** Manifest mounts, as declared (kind, uri, secret ref id only). */
  mounts: RunnerMount[];
  snapshotDir: string;
  registryDir: string;
  /** How the session's processes are held (its sandbox, or its cgroup): kept in the registry, never in state. */
  sandbox: SandboxRecord | null;
}

export interface LocalRuntime {
  env: EnvSource;
  bwrap: string | null;
  setpriv: string | null;
  nsenter: string | null;
  slirp4netns: string | null;
  /**
   * The operator's word that this host is the sandbox (`createLocalProvider({ hostIsSandbox })`, never a
   * destination's or a state's): sessions without isolation then address the host's whole view.
   */
  hostIsSandbox: boolean;
}

/**
 * What a session's modules share (its commands, its files): the session's record and tools, its confinement,
 * and its sandbox, alive.
 */
export interface SessionContext {
  readonly info: LocalSessionInfo;
  readonly runtime: LocalRuntime;
  readonly confinement: Confinement;
  /** The session's sandbox, alive: started again over the same workspace if it has ended. */
  liveSandbox(): Promise<SandboxRecord | null>;
}

/** The workspace as commands see it: `workspace_path` under bwrap, else its host path. */
export function runnerRootOf(info: LocalSessionInfo): string {
  return info.config.workspace_path ?? info.workspaceRoot;
}

/**
 * Whether the file API and `cwd` address the sandbox's whole view: under bwrap, or without isolation on a host
 * its operator declared to be the sandbox (`hostIsSandbox`, a provider setting: no destination or state sets it).
 */
export function sandboxScopeOf(info: LocalSessionInfo, runtime: LocalRuntime): boolean {
  return info.config.isolation === "bwrap" || runtime.hostIsSandbox;
}

export function checkAborted(signal: AbortSignal | undefined, operation: string): void {
  if (signal?.aborted) throw new CancelledError({ operation });
}
