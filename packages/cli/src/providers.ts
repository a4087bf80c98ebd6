import type { EnvSource, RemoteRunnerProvider } from "@roder/runner-contract";

/** Loads every installed provider package (a missing package is simply absent). */
export async function loadProviders(env: EnvSource): Promise<RemoteRunnerProvider[]> {
  const out: RemoteRunnerProvider[] = [];
  const tryLoad = async (fn: () => Promise<RemoteRunnerProvider>) => {
    try {
      out.push(await fn());
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== "ERR_MODULE_NOT_FOUND" && code !== "MODULE_NOT_FOUND") throw error;
    }
  };
  await tryLoad(async () => (await import("@roder/runner-local")).createLocalProvider({ env }));
  await tryLoad(async () => (await import("@roder/runner-http")).createHttpRunnerProvider({ env }));
  await tryLoad(async () => (await import("@roder/runner-fly")).createFlyProvider({ env }));
  await tryLoad(async () => (await import("@roder/runner-e2b")).createE2bProvider({ env }));
  return out;
}
