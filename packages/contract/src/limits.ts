import { z } from "zod";

/**
 * Limits that bite users, queryable before a session exists: each provider answers `provider.limits()` (its own
 * data, validated against this schema by the conformance suite).
 */
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
