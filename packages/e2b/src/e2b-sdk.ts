import { realpathSync } from "node:fs";
import { fileURLToPath, pathToFileURL } from "node:url";

export type E2bModule = typeof import("e2b");

/** The SDK's connection options of one call (the API key asked for it). */
export interface E2bConnection {
  apiKey: string;
  apiUrl?: string;
  sandboxUrl?: string;
  domain?: string;
  requestTimeoutMs?: number;
  signal?: AbortSignal;
}

/**
 * The official SDK. It ships no `exports` map, so an ESM import loads its CommonJS main, whose own `require`s
 * resolve from where that file was loaded. Node 20's ESM resolver has been seen to hand back the package's
 * symlinked path in a pnpm workspace (with stdin a pipe, after other workspace packages loaded), where those
 * `require`s cannot find the SDK's dependencies: then the SDK is loaded again by its real path.
 */
export async function loadE2bSdk(): Promise<E2bModule> {
  try {
    return (await import("e2b")) as unknown as E2bModule;
  } catch (error) {
    let real: string;
    try {
      const url = import.meta.resolve("e2b");
      real = pathToFileURL(realpathSync(fileURLToPath(url))).href;
      if (real === url) throw error;
    } catch {
      throw error;
    }
    return (await import(real)) as unknown as E2bModule;
  }
}
