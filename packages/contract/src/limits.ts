import { z } from "zod";

/** Limits that bite users, per provider, queryable before a session exists. */
export const RunnerLimitsSchema = z.object({
  provider_id: z.string(),
  /** Largest file moved by one readFile/writeFile call, in bytes (null: bounded by memory only). */
  max_file_bytes: z.number().int().positive().nullable(),
  /** Longest command (ms); null: no provider limit beyond timeout_ms. */
  max_command_ms: z.number().int().positive().nullable(),
  /** `native`: output chunks arrive as produced; `buffered`: only at the end. */
  streaming: z.enum(["native", "buffered"]),
  /** Can a running command's stream be reattached after the client disconnects? */
  reattach: z.boolean(),
  /**
   * `attachCommand`: `none`; `in-process` (another session object of the same host process, after `detach`);
   * `any-client` (another process, after the first disconnected or crashed: what `reattach: true` means).
   */
  attach: z.enum(["none", "in-process", "any-client"]),
  /** What an attached follower sees first: the retained output (`retained`) or only what comes next (`live`). */
  attach_replay: z.enum(["retained", "live"]).nullable(),
  cancellation: z.enum(["native", "emulated", "none"]),
  /** `session.pause()`: `keeps-memory` (files, processes and memory kept; resumeSession resumes) or `none`. */
  pause: z.enum(["keeps-memory", "none"]),
  /**
   * What the session's file API and a command's `cwd` address: `workspace` (the workspace and read roots),
   * `sandbox` (the sandbox's own view: absolute paths as the sandbox sees them), or `destination` (`sandbox` for
   * an isolated destination, `workspace` otherwise — the local runner's `isolation`, the HTTP server's backend).
   * `RemoteWorkspace` gives a host the narrow scope on any provider.
   */
  file_scope: z.enum(["workspace", "sandbox", "destination"]).optional(),
  notes: z.string(),
});
export type RunnerLimits = z.infer<typeof RunnerLimitsSchema>;

const TABLE: Record<string, RunnerLimits> = {
  "unix-local": {
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
  },
  http: {
    provider_id: "http",
    max_file_bytes: 64 * 1024 * 1024 * 1024,
    max_command_ms: null,
    streaming: "native",
    reattach: true,
    attach: "any-client",
    attach_replay: "retained",
    cancellation: "native",
    pause: "none",
    file_scope: "destination",
    notes:
      "NDJSON stream endpoint; a streaming command outlives its client's connection (bounded by timeout_ms and the session) and GET /sessions/{id}/commands/{cid}/stream reattaches, replaying what the backend retained; stdin and terminals of a running command through the server (writes carry byte offsets: a resent write is applied once); files stream both ways with bounded memory (readFileStream with byte ranges, writeFileStream, atomic) up to the server's maxFileBytes (default 64 GiB; 512 MiB through a backend that does not stream files); GET /capabilities reports the server's",
  },
  fly: {
    provider_id: "fly",
    max_file_bytes: null,
    max_command_ms: null,
    streaming: "native",
    reattach: true,
    attach: "any-client",
    attach_replay: "retained",
    cancellation: "emulated",
    pause: "keeps-memory",
    file_scope: "sandbox",
    notes:
      "exec mode: a command starts detached in the machine (output in files there) and is long-polled, one exec held at most exec_hold_s (default 20 s, under the API edge's ~30 s) per poll, so chunks arrive as polled and any client reattaches from state(), replaying from the start (finished commands kept 10 min); every call paced per machine and action under Fly's 1 req/s (burst 3), 429s absorbed honouring Retry-After; files move in 4 MiB parts, one exec each; cancel kills the process group through an exec; no stdin to a running command and no terminal (startCommand with stdin: true or pty rejects with UnsupportedCapabilityError, capability stdin / pty)",
  },
  e2b: {
    provider_id: "e2b",
    max_file_bytes: null,
    max_command_ms: 24 * 3600 * 1000,
    streaming: "native",
    reattach: true,
    attach: "any-client",
    attach_replay: "live",
    cancellation: "native",
    pause: "keeps-memory",
    file_scope: "sandbox",
    notes:
      "envd process stream; commands outlive the client and are reattached through envd Connect (found by their RODER_COMMAND_ID env), output from the moment of attaching; ttl_seconds is idle time (the provider moves the sandbox's timeout while the session is used, commands included); the plan's maximum sandbox length (1 h base, 24 h Pro) bounds every command; stdin through envd's pipe (commands.sendStdin / closeStdin) and terminals through envd's PTY (pty.create / sendInput / resize: E2B's PTY starts a login shell, into which a launch line is typed behind a start marker (the argv carried in its env); closeStdin on a terminal sends Ctrl+D)",
  },
};

/** The documented limits of a provider id (validated), or null for an unknown provider. */
export function describeProviderLimits(providerId: string): RunnerLimits | null {
  const l = TABLE[providerId];
  return l ? RunnerLimitsSchema.parse(l) : null;
}
