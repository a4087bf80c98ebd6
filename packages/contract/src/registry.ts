// STUB: signatures fixed; the implementation is being written.
import type { RemoteRunnerProvider, RemoteRunnerSession, RunnerCallOptions } from "./runner-interfaces.js";
import type { RunnerCapabilities, RunnerDestination, RunnerSessionState } from "./schemas.js";

export interface RunnerRegistry {
  get(providerId: string): RemoteRunnerProvider;
  list(): Array<{ id: string; capabilities: RunnerCapabilities; setupHint: string | null }>;
  createSession(destination: RunnerDestination, options?: RunnerCallOptions): Promise<RemoteRunnerSession>;
  resumeSession(state: RunnerSessionState, options?: RunnerCallOptions): Promise<RemoteRunnerSession>;
}

export declare function createRunnerRegistry(providers: Iterable<RemoteRunnerProvider>): RunnerRegistry;
