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

/** The error `fn` fails with (and a failure of the check when it does not fail). */
export async function thrown(fn: () => Promise<unknown>): Promise<unknown> {
  try {
    await fn();
  } catch (error) {
    return error;
  }
  throw new Error("expected the operation to fail");
}

/** Everything an error shows (name, message, stack, JSON, and its causes'), to look for secrets in. */
export function errorText(error: unknown): string {
  const parts: string[] = [];
  let cur: unknown = error;
  for (let depth = 0; cur && depth < 8; depth++) {
    if (cur instanceof Error) {
      parts.push(cur.name, cur.message, cur.stack ?? "", JSON.stringify(cur));
      cur = (cur as { cause?: unknown }).cause;
    } else {
      parts.push(String(cur));
      break;
    }
  }
  return parts.join("\n");
}

export const text = (d: Uint8Array) => new TextDecoder().decode(d);
