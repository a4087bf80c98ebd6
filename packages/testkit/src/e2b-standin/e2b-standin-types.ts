import type { ServerResponse } from "node:http";
import type {
  OutputLog,
  RemoteRunnerProvider,
  RemoteRunnerSession,
  RunnerCommandHandle,
  RunnerDestination,
  RunnerSessionState,
  RunnerSnapshotRef,
} from "@roder/runner-contract";
import type { FaultSwitch } from "../fault/faults.js";
import type { SandboxMetricSample } from "./sandbox-metrics.js";

/**
 * A local stand-in of E2B: the REST control plane (X-API-KEY) and the in-sandbox daemon "envd" (Connect RPC
 * with the JSON codec, server streams in `application/connect+json` envelopes, `/files` raw bytes), on one
 * loopback port, routed by the `E2b-Sandbox-Id` header. Each sandbox is a session of the injected backend
 * provider (the local runner in tests, with the workspace at /home/user): commands really run.
 *
 * It behaves as E2B does by default (e2b-dev/infra: handlers/timeout_helper.go, sandbox_create.go,
 * sandbox_connect.go, orchestrator/keep_alive.go, create_instance.go, proxy/template/sandbox_not_found.go):
 * a sandbox is killed when its timeout passes, whatever it runs; the plan's maximum timeout and concurrency
 * are enforced; unknown templates are 404. Each behaviour has an option a test may switch off.
 */
export interface E2bStandInOptions {
  backend: RemoteRunnerProvider;
  backendDestination?: (sandboxId: string) => RunnerDestination;
  apiKey?: string;
  /** Version reported to the SDK (gates its features). */
  envdVersion?: string;
  /**
   * Kill a running sandbox when its timeout passes, whatever it is doing (default true, as E2B): its envd
   * connections drop, envd then answers 502 "The sandbox was not found", the control plane 404.
   */
  killOnTimeout?: boolean;
  /**
   * The plan's maximum sandbox timeout in hours (default 1, E2B's base plan; Pro is 24): a create or connect
   * asking for more is 400 "Timeout cannot be greater than N hours", and `POST /sandboxes/{id}/timeout` never
   * keeps a sandbox past this long after its start. `Infinity` switches it off.
   */
  maxTimeoutHours?: number;
  /** The plan's concurrent running sandboxes (default 20, E2B's base plan): one more is 429. `Infinity`: off. */
  maxConcurrentSandboxes?: number;
  /**
   * Templates that exist (default `["base"]`); another name is 404 `template 'x' not found`. Snapshot ids
   * made by this stand-in always exist. `"any"` accepts every name.
   */
  templates?: readonly string[] | "any";
  /** How often a running sandbox's resources are sampled for `GET /sandboxes/{id}/metrics` (default 5000, E2B's; 0: never). */
  metricsIntervalMs?: number;
  /**
   * Serve E2B's edge over HTTPS too, as `https://<port>-<id>.<domain>` (what `getHost(port)` names), through the
   * testkit's intercepting HTTPS proxy: a client given `HTTPS_PROXY=<httpsEdge.proxyUrl>` and trusting
   * `httpsEdge.caCertFile` (`NODE_EXTRA_CA_CERTS`; Node's fetch honours the proxy with `NODE_USE_ENV_PROXY=1`,
   * Node ≥ 22.21 / 24.5) reaches a sandbox's ports by their E2B names. Default false (it makes a CA for the run).
   */
  httpsEdge?: boolean;
}

export interface E2bStandInSandbox {
  sandboxID: string;
  templateID: string;
  state: "running" | "paused";
  metadata: Record<string, string>;
  envVars: Record<string, string>;
  startedAt: string;
  /** When E2B kills it (ISO time); moved by `setTimeout`, `connect` and resume. */
  endAt: string;
  envdAccessToken: string;
  session: RemoteRunnerSession;
  processes: Map<number, StandInProcess>;
  nextPid: number;
  /** envd responses in flight: a killed sandbox drops their connections. */
  connections: Set<ServerResponse>;
  timer?: ReturnType<typeof setTimeout>;
  /** Resource samples, one per collection interval while running (`GET /sandboxes/{id}/metrics`). */
  metrics: Array<SandboxMetricSample & { timestampUnix: number }>;
  cpuTicks?: [number, number];
  metricsTimer?: ReturnType<typeof setInterval>;
  /** What its timeout does (`autoPause` at create) and whether traffic through the edge resumes it. */
  lifecycle: { onTimeout: "kill" | "pause"; autoResume: boolean };
  /** The timeout (s) it was created with: an auto-resume runs it again for as long. */
  timeoutS: number;
}

/** A process envd runs: its output log outlives any client stream (Start or Connect), as in envd. */
export interface StandInProcess {
  handle: RunnerCommandHandle;
  log: OutputLog;
  cmd: string;
  args: string[];
  envs: Record<string, string>;
  cwd?: string;
  /**
   * Its input, through the backend handle's `write`/`closeStdin`/`resize`: `stdin` (a pipe, until closed) or
   * `pty` (a terminal), as envd gives it.
   */
  input?: { pty: boolean; closed: boolean };
}

export interface E2bStandIn {
  apiUrl: string;
  sandboxUrl: string;
  domain: string;
  apiKey: string;
  /** Live sandboxes (running or paused), for leak counting. */
  sandboxes(): E2bStandInSandbox[];
  /** Kills a sandbox from the outside (as when it dies): its envd connections drop, as at its timeout. */
  killSandbox(id: string): Promise<void>;
  /** Ids of sandboxes killed because their timeout passed (in order). */
  timedOut: string[];
  faults: FaultSwitch;
  /** Method, path, status and arrival time (ms since the epoch) of every request (no bodies or headers). */
  requests: Array<{ method: string; path: string; status: number; at: number }>;
  /** With `httpsEdge`: the proxy to name in `HTTPS_PROXY` and the CA certificate its TLS is issued from. */
  httpsEdge?: { proxyUrl: string; caCertFile: string };
  stop(): Promise<void>;
}

/** A snapshot template the stand-in made: what a sandbox is restored from, and E2B's id and names of it. */
export interface StandInSnapshot {
  state: RunnerSessionState;
  snapshot: RunnerSnapshotRef;
  snapshotID: string;
  names: string[];
  sandboxID: string;
}
