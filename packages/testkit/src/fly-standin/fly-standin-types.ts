import type {
  RemoteRunnerProvider,
  RemoteRunnerSession,
  RunnerCommandHandle,
  RunnerDestination,
} from "@roder/runner-contract";
import type { FaultSwitch } from "../fault/faults.js";

/**
 * A local stand-in of the Fly Machines REST API (`/v1/apps/{app}/machines…`): same paths, bodies, status
 * codes and `{"error": "..."}` shapes, bearer auth, machine states, `wait`, leases, and exec that really
 * runs argv, each machine backed by a session of the injected provider (the local runner in tests).
 */
export interface FlyStandInOptions {
  backend: RemoteRunnerProvider;
  /**
   * The backend destination of each machine (default: unix-local under bwrap with the workspace at /workspace, on
   * this host's network; a machine with a service gets a network namespace of its own, as a Fly machine has, so
   * that two machines' internal ports never meet, and the app's address reaches it through a forwarded port).
   */
  backendDestination?: (machineId: string, config: Record<string, unknown>) => RunnerDestination;
  /**
   * Host directories every machine's image holds, read-only at the same paths (default none): e.g. this
   * repository, so that a machine can run its built CLI as the agent (`node <repo>/packages/cli/dist/bin.js`).
   */
  imageDirs?: string[];
  token?: string;
  /** Time a machine spends in `starting` (default 150 ms). */
  startDelayMs?: number;
  /** Time a machine spends in `stopping`, `suspending` and `destroying` (default 50 ms). */
  transitionDelayMs?: number;
  /**
   * Fly's rate limit: per machine (per app for create and list), per action, `perSecond` requests with bursts of
   * `burst`; beyond it 429 `{"error","status"}` with `Retry-After` (default `{ perSecond: 1, burst: 3 }`).
   * `false` turns it off.
   */
  rateLimit?: { perSecond: number; burst: number } | false;
  /**
   * The API edge's limit on one exec request: held longer, it is answered 408 while the command goes on in the
   * machine (default 30 000 ms). `false` turns it off.
   */
  execRequestLimitMs?: number | false;
  /**
   * Stop then start resets the machine: its backend session is closed at stop (files and processes gone) and
   * rebuilt from the image (config `files` written again) at start (default true). `false`: stop keeps it.
   */
  resetOnStop?: boolean;
  /** How long a destroyed machine still answers GET with `state: "destroyed"` before 404 (default 5000 ms). */
  destroyedLingerMs?: number;
  /**
   * Fly's guest sizes and suspend eligibility: sizes Fly refuses are refused at create (422), suspend of a
   * machine with more than 4 GB, swap or a schedule is refused (412) (default true). `false` accepts anything.
   */
  enforceGuestLimits?: boolean;
}

export type FlyMachineState =
  | "created"
  | "starting"
  | "started"
  | "stopping"
  | "stopped"
  | "suspending"
  | "suspended"
  | "replacing"
  | "destroying"
  | "destroyed"
  | "launch_failed";

export interface FlyStandInMachine {
  id: string;
  app: string;
  name: string;
  state: FlyMachineState;
  region: string;
  instance_id: string;
  config: Record<string, unknown>;
  created_at: string;
  updated_at: string;
  session?: RemoteRunnerSession;
  /** The machine's init command (`config.init.cmd`), running while it is started. */
  init?: RunnerCommandHandle;
  /** When it was destroyed (ms since epoch): GET answers `destroyed` until `destroyedLingerMs` later, then 404. */
  destroyed_at?: number;
  /** Where the app's address reaches the machine's service (`config.services[0].internal_port`) on this host. */
  serviceUrl?: string;
  /** The output of the machine's init (its last 64 KiB), as `fly logs` shows it. */
  log: string;
  lease?: { nonce: string; expires_at: number; owner: string; description: string };
}

/** A Fly volume (fly-go `Volume`): its files survive the resets of the machine it is mounted in. */
export interface FlyStandInVolume {
  id: string;
  app: string;
  name: string;
  state: "created" | "pending_destroy";
  size_gb: number;
  region: string;
  zone: string;
  encrypted: boolean;
  attached_machine_id: string | null;
  created_at: string;
  /** The files under the mount path, as a tar archive, kept while no machine has them (at stop and destroy). */
  contents?: Uint8Array;
}

export interface FlyStandIn {
  baseUrl: string;
  /** Volumes not deleted. */
  volumes(): FlyStandInVolume[];
  token: string;
  /** Machines not destroyed (leak counting). */
  machines(): FlyStandInMachine[];
  faults: FaultSwitch & {
    /** The next created machine fails to start. */
    failNextStart(): void;
  };
  /** Method, path and status of every request (no bodies, no headers). */
  requests: Array<{ method: string; path: string; status: number }>;
  /** How many requests the rate limit refused (429) so far. */
  readonly rateLimited: number;
  /** How many exec requests were answered 408 because they were held past `execRequestLimitMs`. */
  readonly execTimeouts: number;
  /**
   * The app's public address (`https://{app}.fly.dev` on Fly): Fly's proxy routes a request carrying
   * `fly-force-instance-id: <machine id>` to that machine's service (`config.services[0].internal_port`),
   * others to any started machine with a service; 503 when no machine can take it.
   */
  appUrl: string;
  /** Stops a machine as Fly's platform may (host maintenance, an operator): the next start resets it. */
  stopMachine(id: string): Promise<void>;
  /** Bodies of create and exec requests as received (to check wire shapes; never carries the token). */
  bodies: Array<{ path: string; body: unknown }>;
  stop(): Promise<void>;
}
