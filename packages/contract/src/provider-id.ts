import type { z } from "zod";
import { InvalidDestinationConfigError, RunnerError } from "./errors/index.js";
import type { RunnerSessionState } from "./schemas.js";

/**
 * What a provider is handed that another provider may have written. A destination or snapshot ref of another
 * provider is refused before anything is done, with `InvalidDestinationConfigError` ("destination is for
 * provider 'fly'"); a state is checked by `decodeSessionMetadata`, which decodes it too.
 */
export function checkProviderId(providerId: string, what: "destination" | "snapshot", got: string): void {
  if (got !== providerId)
    throw new InvalidDestinationConfigError({ providerId, message: `${what} is for provider '${got}'` });
}

/**
 * A session state's metadata, decoded by the provider's schema (never cast): a state of another provider, or
 * metadata the schema refuses, is a typed `invalid_request` whose message starts with `what` (default
 * "not a <providerId> session state") and says why ("it is for provider 'fly'", or the bad fields).
 */
export function decodeSessionMetadata<S extends z.ZodType>(
  schema: S,
  state: Pick<RunnerSessionState, "provider_id" | "metadata">,
  providerId: string,
  what = `not a ${providerId} session state`,
): z.output<S> {
  if (state.provider_id !== providerId)
    throw new RunnerError("invalid_request", `${what}: it is for provider '${state.provider_id}'`);
  const result = schema.safeParse(state.metadata);
  if (result.success) return result.data;
  const issues = result.error.issues.map(
    (i) => `${i.path.map(String).join(".") || "(metadata)"}: ${i.message}`,
  );
  throw new RunnerError("invalid_request", `${what}: ${issues.join("; ")}`);
}
