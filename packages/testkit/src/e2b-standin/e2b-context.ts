import { randomBytes } from "node:crypto";
import type { RemoteRunnerSession, RunnerDestination } from "@roder/runner-contract";
import { ApiError, sandboxNotFound } from "./e2b-http.js";
import type { E2bStandInOptions, E2bStandInSandbox, StandInSnapshot } from "./e2b-standin-types.js";
import { ENVD_USERS } from "./envd-paths.js";
import { sandboxMetrics } from "./sandbox-metrics.js";

/** The team's namespace in snapshot names (`<team>/<name>`). */
export const TEAM = "standin";

/** The context every part of the stand-in shares: its settings, sandboxes and snapshots, and their lifecycle. */
export type E2bContext = ReturnType<typeof createE2bContext>;

/**
 * The stand-in's settings (with E2B's defaults), its sandboxes and snapshots, and a sandbox's life: launch,
 * timeouts against the plan (kill or pause at the end), concurrency, pause and resume, metrics sampling, the VM's
 * end.
 */
export function createE2bContext(options: E2bStandInOptions) {
  const apiKey = options.apiKey ?? `e2b_standin_${randomBytes(12).toString("hex")}`;
  const envdVersion = options.envdVersion ?? "0.6.13";
  const killOnTimeout = options.killOnTimeout ?? true;
  const maxHours = options.maxTimeoutHours ?? 1;
  const maxLengthMs = maxHours * 3600 * 1000;
  const maxConcurrent = options.maxConcurrentSandboxes ?? 20;
  const templates = options.templates ?? ["base"];
  const timedOut: string[] = [];
  const domain = "e2b.local";
  const sandboxes = new Map<string, E2bStandInSandbox>();
  /** Snapshot templates: raw template id → what to restore from, and E2B's ids and names of it. */
  const snapshots = new Map<string, StandInSnapshot>();
  /** A snapshot by any of its references: its template id (with or without a tag), its id or a name. */
  const findSnapshot = (ref: string) => {
    const bare = ref.replace(/:default$/, "");
    for (const [raw, snap] of snapshots)
      if (
        raw === bare ||
        snap.snapshotID === ref ||
        snap.names.includes(bare) ||
        snap.names.includes(`${TEAM}/${bare}`)
      )
        return { raw, snap };
    return undefined;
  };
  const metricsIntervalMs = options.metricsIntervalMs ?? 5000;
  const backendDestination: (id: string) => RunnerDestination =
    options.backendDestination ??
    ((id: string) => ({
      id: `e2b-${id}`,
      provider_id: options.backend.id,
      // One sandbox per machine (its /tmp and processes shared by every command), on this host's network: the
      // stand-in models the internet as this host's loopback, where the tests' S3/GCS/Azure stand-ins listen.
      config: { isolation: "bwrap", workspace_path: "/home/user", network: "host" },
      default_manifest: { entries: [], mounts: [] },
    }));

  /** The VM goes: envd's connections drop at once (as a killed VM's would), then its processes and session. */
  async function destroy(s: E2bStandInSandbox): Promise<void> {
    sandboxes.delete(s.sandboxID);
    if (s.timer) clearTimeout(s.timer);
    if (s.metricsTimer) clearInterval(s.metricsTimer);
    for (const res of s.connections) res.destroy();
    s.connections.clear();
    for (const p of s.processes.values()) await p.handle.kill("SIGKILL").catch(() => false);
    await s.session.close().catch(() => {});
  }

  /** Collects a resource sample every interval while the sandbox runs (E2B aligns them to 5 s buckets). */
  function collectMetrics(s: E2bStandInSandbox): void {
    if (s.metricsTimer) clearInterval(s.metricsTimer);
    s.metricsTimer = undefined;
    if (s.state !== "running" || !(metricsIntervalMs > 0)) return;
    let busy = false;
    s.metricsTimer = setInterval(() => {
      if (busy || sandboxes.get(s.sandboxID) !== s) return;
      busy = true;
      sandboxMetrics(s.session, ENVD_USERS.user!.home, s.cpuTicks)
        .then((m) => {
          s.cpuTicks = m.cpuTicks;
          s.metrics.push({ ...m, timestampUnix: Math.floor(Date.now() / 1000) });
          if (s.metrics.length > 720) s.metrics.shift();
        })
        .catch(() => {})
        .finally(() => {
          busy = false;
        });
    }, metricsIntervalMs);
    s.metricsTimer.unref();
  }

  function pauseNow(s: E2bStandInSandbox): void {
    s.state = "paused";
    for (const res of s.connections) res.destroy();
    s.connections.clear();
    schedule(s);
  }

  /** A paused sandbox running again as a new instance: its clock starts again and its end is set. */
  function resumeNow(s: E2bStandInSandbox, timeoutS: number): void {
    checkConcurrency();
    s.state = "running";
    s.startedAt = new Date().toISOString();
    s.endAt = new Date(endFor(s, timeoutS)).toISOString();
    schedule(s);
  }

  /** Arms the kill at `endAt` (running sandboxes only: a paused one keeps no timer). */
  function schedule(s: E2bStandInSandbox): void {
    collectMetrics(s);
    if (s.timer) clearTimeout(s.timer);
    s.timer = undefined;
    if (!killOnTimeout || s.state !== "running") return;
    const ms = Math.max(0, Date.parse(s.endAt) - Date.now());
    s.timer = setTimeout(
      () => {
        if (sandboxes.get(s.sandboxID) !== s) return;
        timedOut.push(s.sandboxID);
        // `lifecycle.onTimeout: "pause"`: paused (its envd connections drop, as a paused VM's), not killed.
        if (s.lifecycle.onTimeout === "pause") return pauseNow(s);
        void destroy(s);
      },
      Math.min(ms, 2 ** 31 - 1),
    );
    s.timer.unref();
  }

  /** A requested timeout (seconds) checked against the plan, as infra's validateAndParseTimeout. */
  function checkTimeout(seconds: number | undefined, fallback: number, allowZero = false): number {
    const t = seconds ?? fallback;
    if (typeof t !== "number" || !Number.isFinite(t)) throw new ApiError(400, "timeout must be a number");
    if (t < 0 || (t === 0 && !allowZero)) throw new ApiError(400, "Timeout must be greater than 0");
    if (t * 1000 > maxLengthMs) throw new ApiError(400, `Timeout cannot be greater than ${maxHours} hours`);
    return t;
  }

  function checkConcurrency(): void {
    const running = [...sandboxes.values()].filter((x) => x.state === "running").length;
    if (running >= maxConcurrent)
      throw new ApiError(
        429,
        `you have reached the maximum number of concurrent E2B sandboxes (${maxConcurrent}). If you need more, please visit 'https://e2b.dev/docs/billing'`,
      );
  }

  /** The end a timeout gives, never past the plan's maximum length after the sandbox's start (keep_alive.go). */
  function endFor(s: E2bStandInSandbox, seconds: number): number {
    const now = Date.now();
    const left = Date.parse(s.startedAt) + maxLengthMs - now;
    return now + Math.max(0, Math.min(seconds * 1000, left));
  }

  /** A new running sandbox on a backend session (new, or restored from a snapshot), its clock started. */
  async function launch(
    templateID: string,
    timeout: number,
    metadata: Record<string, string>,
    envVars: Record<string, string>,
    session: (id: string) => Promise<RemoteRunnerSession>,
    lifecycle?: { autoPause?: boolean; autoResume?: boolean },
  ): Promise<E2bStandInSandbox> {
    const id = `i${randomBytes(9).toString("hex")}`;
    const backend = await session(id);
    const now = Date.now();
    const s: E2bStandInSandbox = {
      sandboxID: id,
      templateID,
      state: "running",
      metadata,
      envVars,
      startedAt: new Date(now).toISOString(),
      endAt: new Date(now + timeout * 1000).toISOString(),
      envdAccessToken: randomBytes(16).toString("hex"),
      session: backend,
      processes: new Map(),
      nextPid: 100,
      connections: new Set(),
      metrics: [],
      lifecycle: {
        onTimeout: lifecycle?.autoPause ? "pause" : "kill",
        autoResume: lifecycle?.autoResume === true,
      },
      timeoutS: timeout,
    };
    sandboxes.set(id, s);
    schedule(s);
    return s;
  }

  /** The sandbox a request is for: E2B's edge routes only to running sandboxes (else 502, /health included). */
  function runningSandbox(id: string): E2bStandInSandbox {
    const s = sandboxes.get(id);
    if (s?.state !== "running") throw sandboxNotFound(id);
    return s;
  }

  return {
    options,
    apiKey,
    envdVersion,
    maxLengthMs,
    templates,
    domain,
    timedOut,
    sandboxes,
    snapshots,
    findSnapshot,
    backendDestination,
    destroy,
    pauseNow,
    resumeNow,
    schedule,
    checkTimeout,
    checkConcurrency,
    endFor,
    launch,
    runningSandbox,
  };
}
