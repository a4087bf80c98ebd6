import type { RunnerDestinationInput, RunnerLimits } from "@roder/runner-contract";
import { createHttpRunnerProvider } from "@roder/runner-http";
import { flyMode } from "./fly-config.js";

const FLY_EXEC_LIMITS: RunnerLimits = {
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
    "exec mode: a command starts detached in the machine (output in files there) and is long-polled, one exec held at most exec_hold_s (default 20 s, under the API edge's ~30 s) per poll, so chunks arrive as polled and any client reattaches from state(), replaying from the start (finished commands kept 10 min); every call paced per machine and action under Fly's 1 req/s (burst 3), 429s absorbed honouring Retry-After; files move in 4 MiB parts, one exec each; cancel kills the process group through an exec; no stdin to a running command and no terminal (startCommand with stdin: true or pty rejects with UnsupportedCapabilityError, capability stdin / pty). Agent mode (image_has_agent or mode: agent; limits(destination) answers for it): stdin, terminals, native cancel and streamed files through the agent",
};

// Agent mode speaks the HTTP runner protocol to the agent (`roder-runner serve --isolation none
// --host-is-sandbox`): the HTTP provider's limits, with Fly's pause (suspend) and the machine's whole view as the
// file scope (as in exec mode).
const AGENT_NOTES =
  "agent mode: the machine runs roder-runner serve and every command, file and stream goes to it over the HTTP runner protocol (NDJSON streams) through the app's address pinned with fly-force-instance-id; no exec after create, so Fly's exec rate limit and the edge's ~30 s exec timeout do not apply (the Machines API is used for create, wait, suspend and destroy, paced and 429s absorbed honouring Retry-After); a command outlives its client and any process reattaches, replaying what the agent retained; stdin and terminals of a running command through the agent; cancel through the agent; files stream both ways up to the agent's maxFileBytes (default 64 GiB); paths address the machine's own view, as in exec mode (absolute paths as the machine sees them, relative ones against the agent session's workspace, a directory under workspace_root)";

/** The Fly provider's limits in a mode (`createFlyProvider().limits(destination)` picks the destination's). */
export function flyLimits(mode: "agent" | "exec"): RunnerLimits {
  if (mode === "exec") return { ...FLY_EXEC_LIMITS };
  const http = createHttpRunnerProvider({ id: "fly" }).limits();
  return { ...http, pause: "keeps-memory", file_scope: "sandbox", notes: AGENT_NOTES };
}

/** The limits of a destination's mode (its `mode`, else agent when `image_has_agent`); exec mode without one. */
export function flyLimitsFor(destination?: RunnerDestinationInput): RunnerLimits {
  const c = ((destination as { config?: unknown } | undefined)?.config ?? {}) as {
    mode?: unknown;
    image_has_agent?: unknown;
  };
  return flyLimits(
    flyMode({
      mode: c.mode === "agent" || c.mode === "exec" ? c.mode : undefined,
      image_has_agent: c.image_has_agent === true,
    }),
  );
}
