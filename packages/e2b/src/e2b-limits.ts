import type { RunnerLimits } from "@roder/runner-contract";

/** The E2B provider's limits (`createE2bProvider().limits()`). */
export const E2B_LIMITS: RunnerLimits = {
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
};
