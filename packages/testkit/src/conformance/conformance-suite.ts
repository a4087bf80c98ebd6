import { createServer } from "node:net";
import type {
  RemoteRunnerProvider,
  RemoteRunnerSession,
  RunnerCommandResult,
  RunnerDestination,
  RunnerLimits,
} from "@roder/runner-contract";
import type { RunnerConformanceOptions } from "./runner-conformance-options.js";

/** Registers one check (`it`, or `it.skip` when the options skip it by name). */
export type Check = (name: string, fn: () => Promise<void>, timeout?: number) => void;

/**
 * What every check group of `describeRunnerConformance` shares. `provider`, `destination`, `session` and `root`
 * are set in the suite's `beforeAll`: read them inside a check, never while registering.
 */
export interface ConformanceSuite {
  readonly options: RunnerConformanceOptions;
  readonly check: Check;
  /** The secret values no state, snapshot, event or error may hold. */
  readonly secrets: string[];
  /** Size of the large binary round trip. */
  readonly large: number;
  readonly provider: RemoteRunnerProvider;
  readonly destination: RunnerDestination;
  /** The session the checks share (created once, in `beforeAll`). */
  readonly session: RemoteRunnerSession;
  /** The session's workspace root (`state().metadata.workspace_root`). */
  readonly root: string;
  /** Sessions to close after the suite (checks that create their own push them here). */
  readonly opened: RemoteRunnerSession[];
  /** A fresh command id. */
  id(): string;
  /** `sh -c script` in the shared session. */
  sh(script: string, extra?: Record<string, unknown>): Promise<RunnerCommandResult>;
  /** The provider's published limits (the options' or `provider.limits(destination)`), schema-checked. */
  limitsOf(): RunnerLimits;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

export { errorText, thrown } from "../canary/canaries.js";

export const text = (d: Uint8Array) => new TextDecoder().decode(d);
