import type { z } from "zod";
import { InvalidDestinationConfigError, RunnerError } from "./errors/index.js";
import type { RunnerSessionState } from "./schemas.js";

/**
 * What a provider is handed that another provider may have written: a destination, a snapshot ref, a state.
 * One of another provider is refused before anything is done: a destination or snapshot with
 * `InvalidDestinationConfigError` ("destination is for provider 'fly'"), a state with a typed
 * `invalid_request` ("not a unix-local session state: it is for provider 'fly'").
 */
export function checkProviderId(
  providerId: string,
  what: "destination" | "snapshot" | "state",
  got: string,
): void {
  if (got === providerId) return;
  if (what === "state")
    throw new RunnerError(
      "invalid_request",
      `not a ${providerId} session state: it is for provider '${got}'`,
    );
  throw new InvalidDestinationConfigError({ providerId, message: `${what} is for provider '${got}'` });
}

/**
 * A session state's metadata, decoded by the provider's schema (never cast): a state of another provider, or
 * metadata the schema refuses, is a typed `invalid_request` (see `checkProviderId`); the latter's message
 * starts with `what` (default "not a <providerId> session state") and names the bad fields.
 */
export function decodeSessionMetadata<S extends z.ZodType>(
  schema: S,
  state: Pick<RunnerSessionState, "provider_id" | "metadata">,
  providerId: string,
  what = `not a ${providerId} session state`,
): z.output<S> {
  checkProviderId(providerId, "state", state.provider_id);
  const result = schema.safeParse(state.metadata);
  if (result.success) return result.data;
  const issues = result.error.issues.map(
    (i) => `${i.path.map(String).join(".") || "(metadata)"}: ${i.message}`,
  );
  throw new RunnerError("invalid_request", `${what}: ${issues.join("; ")}`);
}
