import type { RunnerLimits } from "@roder/runner-contract";

/** The local runner's limits (`createLocalProvider().limits()`). */
export const LOCAL_LIMITS: RunnerLimits = {
  provider_id: "unix-local",
  max_file_bytes: null,
  max_command_ms: null,
  streaming: "native",
  reattach: false,
  attach: "in-process",
  attach_replay: "retained",
  cancellation: "native",
  pause: "none",
  file_scope: "destination",
  notes:
    "a session is one sandbox: under bwrap one bubblewrap per session (user, PID, mount, network namespaces; no capabilities) that every command enters; without isolation a cgroup v2 per session, or where none can be made an environment marker and a /proc scan at close (best effort) — state().metadata.process_tracking says which (sandbox | cgroup | marker); close ends every process the session started; output capped per stream by output_limit_bytes (default 16 MiB); commands belong to the host process, so they are attachable from any session object of that process (the last 16 MiB of output replayed, 64 MiB retained per session across its commands), not after it exits",
};

/** With `hostIsSandbox`: every session's file API addresses the sandbox's own view (the host's, or its bwrap's). */
export const HOST_IS_SANDBOX_LIMITS: Pick<RunnerLimits, "file_scope" | "notes"> = {
  file_scope: "sandbox",
  notes: `${LOCAL_LIMITS.notes}; hostIsSandbox: the operator declared this host the sandbox, so sessions without isolation address its whole view (any absolute path, relative ones against the workspace)`,
};
