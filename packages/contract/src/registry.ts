import { UnknownProviderError } from "./errors/unknown-provider-error.js";
import type { RunnerDestinationInput } from "./method-inputs.js";
import type { RemoteRunnerProvider, RemoteRunnerSession, RunnerCallOptions } from "./runner-interfaces.js";
import type { RunnerCapabilities, RunnerSessionState } from "./schemas.js";

export interface RunnerRegistry {
  /** The provider with this id, or `UnknownProviderError` listing the known ids. */
  get(providerId: string): RemoteRunnerProvider;
  has(providerId: string): boolean;
  list(): Array<{ id: string; capabilities: RunnerCapabilities; setupHint: string | null }>;
  /** Validates the destination with its provider (named by `provider_id`), then creates a session. */
  createSession(
    destination: RunnerDestinationInput & { provider_id: string },
    options?: RunnerCallOptions,
  ): Promise<RemoteRunnerSession>;
  /** Resumes with the provider named by `state.provider_id`. */
  resumeSession(state: RunnerSessionState, options?: RunnerCallOptions): Promise<RemoteRunnerSession>;
}

export function createRunnerRegistry(providers: Iterable<RemoteRunnerProvider>): RunnerRegistry {
  const byId = new Map<string, RemoteRunnerProvider>();
  for (const p of providers) {
    if (byId.has(p.id)) throw new Error(`two providers share the id '${p.id}'`);
    byId.set(p.id, p);
  }
  const get = (id: string) => {
    const p = byId.get(id);
    if (!p) throw new UnknownProviderError({ providerId: id, known: [...byId.keys()].sort() });
    return p;
  };
  return {
    get,
    has: (id) => byId.has(id),
    list: () =>
      [...byId.values()].map((p) => ({ id: p.id, capabilities: p.capabilities(), setupHint: p.setupHint() })),
    async createSession(destination, options) {
      const provider = get(destination.provider_id);
      await provider.validateDestination(destination, options);
      return provider.createSession(destination, options);
    },
    async resumeSession(state, options) {
      return get(state.provider_id).resumeSession(state, options);
    },
  };
}
