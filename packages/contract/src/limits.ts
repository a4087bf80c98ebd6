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
  cancellation: z.enum(["native", "emulated", "none"]),
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
    cancellation: "native",
    notes: "pipes of a local process group; output capped per stream by output_limit_bytes (default 16 MiB)",
  },
  http: {
    provider_id: "http",
    max_file_bytes: 512 * 1024 * 1024,
    max_command_ms: null,
    streaming: "native",
    reattach: false,
    cancellation: "native",
    notes:
      "NDJSON stream endpoint; file limit is the server's maxFileBytes (default 512 MiB); GET /capabilities reports the server's",
  },
  fly: {
    provider_id: "fly",
    max_file_bytes: null,
    max_command_ms: null,
    streaming: "buffered",
    reattach: false,
    cancellation: "emulated",
    notes:
      "exec answers once the command ends; files travel base64 in one exec body (bounded by the API's body size, not measured here); cancel kills the process group through a second exec",
  },
  e2b: {
    provider_id: "e2b",
    max_file_bytes: null,
    max_command_ms: 24 * 3600 * 1000,
    streaming: "native",
    reattach: false,
    cancellation: "native",
    notes: "envd process stream; the sandbox lifetime (ttl_seconds) bounds every command",
  },
};

/** The documented limits of a provider id (validated), or null for an unknown provider. */
export function describeProviderLimits(providerId: string): RunnerLimits | null {
  const l = TABLE[providerId];
  return l ? RunnerLimitsSchema.parse(l) : null;
}
