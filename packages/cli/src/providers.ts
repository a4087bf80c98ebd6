import type { EnvSource, RemoteRunnerProvider, SweepableProvider } from "@roder/runner-contract";

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

const isMissingModule = (error: unknown) => {
  const code = (error as NodeJS.ErrnoException).code;
  return code === "ERR_MODULE_NOT_FOUND" || code === "MODULE_NOT_FOUND";
};

/** Where a sweeper looks: fly needs `app`; local takes `root`, http `url` (else their env/defaults). */
export interface SweeperTarget {
  app?: string;
  root?: string;
  url?: string;
}

/**
 * The sweeper of an installed provider package (`fly`, `e2b`, `local`/`unix-local`, `http`); null when its
 * package is not installed. Throws for a provider id without a sweeper.
 */
export async function loadSweeper(
  provider: string,
  target: SweeperTarget,
  env: EnvSource,
): Promise<SweepableProvider | null> {
  const load = async (fn: () => Promise<SweepableProvider>) => {
    try {
      return await fn();
    } catch (error) {
      if (isMissingModule(error)) return null;
      throw error;
    }
  };
  switch (provider) {
    case "fly":
      return load(async () =>
        (await import("@roder/runner-fly")).createFlySweeper({ app: target.app ?? "", env }),
      );
    case "e2b":
      return load(async () => (await import("@roder/runner-e2b")).createE2bSweeper({ env }));
    case "local":
    case "unix-local":
      return load(async () =>
        (await import("@roder/runner-local")).createLocalSweeper(target.root ? { root: target.root } : {}),
      );
    case "http":
      return load(async () =>
        (await import("@roder/runner-http")).createHttpSweeper({
          env,
          ...(target.url ? { baseUrl: target.url } : {}),
        }),
      );
    default:
      throw new Error(`no sweeper for provider '${provider}'`);
  }
}
