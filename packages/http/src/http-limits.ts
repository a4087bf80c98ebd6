import type { RunnerLimits } from "@roder/runner-contract";

/** The HTTP provider's limits (`createHttpRunnerProvider().limits()`): the protocol's, as our server serves it. */
export const HTTP_LIMITS: RunnerLimits = {
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
};
