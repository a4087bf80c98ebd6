import { z } from "zod";
import { RunnerError } from "./errors/runner-error.js";
import { type OperationContext, runInOperationContext } from "./operation-context.js";
import type {
  RemoteRunnerProvider,
  RemoteRunnerSession,
  RunnerCallOptions,
  RunnerCommandHandle,
} from "./runner-interfaces.js";
import type { RunnerDestination, RunnerSessionState } from "./schemas.js";

/** One event per operation. Carries no argument values (no argv, env, file contents or config): no secret. */
export const RunnerOperationEventSchema = z.object({
  provider: z.string(),
  operation: z.string(),
  session_id: z.string().nullable(),
  duration_ms: z.number().nonnegative(),
  bytes_in: z.number().int().nonnegative().optional(),
  bytes_out: z.number().int().nonnegative().optional(),
  /** Retries the provider's own retry loops made inside this operation (HTTP transport, Fly client). */
  retries: z.number().int().nonnegative(),
  outcome: z.enum(["ok", "error"]),
  error_code: z.string().optional(),
  retryable: z.boolean().optional(),
});
export type RunnerOperationEvent = z.infer<typeof RunnerOperationEventSchema>;
export type RunnerObserver = (event: RunnerOperationEvent) => void;

const SESSION_OPS = [
  "runCommand",
  "cancelCommand",
  "readFile",
  "writeFile",
  "exposePort",
  "exportArtifact",
  "snapshot",
  "close",
  "startCommand",
  "attachCommand",
  "pause",
] as const;

/**
 * Wraps a provider so that every operation of it and of its sessions emits one `RunnerOperationEvent` to
 * `observer` (duration, bytes moved by file operations and command output, outcome and error code). The
 * observer never sees arguments. An observer that throws is ignored: metrics never break a call.
 */
export function withObserver<P extends RemoteRunnerProvider>(provider: P, observer: RunnerObserver): P {
  const emit = (e: RunnerOperationEvent) => {
    try {
      observer(e);
    } catch {}
  };
  /** One event: `failure` is what was thrown (`null` for success); `extra` the bytes moved. */
  const report = (
    operation: string,
    sessionId: string | null,
    started: number,
    retries: number,
    failure: { error: unknown } | null,
    extra: Partial<RunnerOperationEvent> = {},
  ) =>
    emit({
      provider: provider.id,
      operation,
      session_id: sessionId,
      duration_ms: performance.now() - started,
      retries,
      ...(failure === null
        ? { outcome: "ok" as const, ...extra }
        : {
            outcome: "error" as const,
            error_code: RunnerError.isInstance(failure.error) ? failure.error.code : "unknown",
            retryable: RunnerError.isInstance(failure.error) ? failure.error.isRetryable : false,
          }),
    });
  const timed = async <T>(
    operation: string,
    sessionId: string | null,
    fn: () => Promise<T>,
    bytes?: (r: T) => Partial<RunnerOperationEvent>,
  ): Promise<T> => {
    const t = performance.now();
    const ctx: OperationContext = { retries: 0 };
    try {
      const r = await runInOperationContext(ctx, fn);
      report(operation, sessionId, t, ctx.retries, null, bytes ? bytes(r) : {});
      return r;
    } catch (error) {
      report(operation, sessionId, t, ctx.retries, { error });
      throw error;
    }
  };
  const wrapSession = (s: RemoteRunnerSession): RemoteRunnerSession => {
    const id = () => s.state().session_id;
    const wrapped: RemoteRunnerSession = Object.create(s);
    for (const op of SESSION_OPS) {
      const original = (s as unknown as Record<string, unknown>)[op];
      if (typeof original !== "function") continue;
      (wrapped as unknown as Record<string, unknown>)[op] = (...args: unknown[]) =>
        timed(
          op,
          id(),
          () => (original as (...a: unknown[]) => Promise<unknown>).apply(s, args),
          (r) => measure(op, args, r),
        );
    }
    if (s.startCommand) {
      // The start is timed above; the command's own event comes when it ends, with its output size.
      const start = wrapped.startCommand!;
      wrapped.startCommand = async (...args) => {
        const t = performance.now();
        const handle = await start(...args);
        return {
          ...handle,
          output: handle.output,
          kill: handle.kill.bind(handle),
          wait: () =>
            handle.wait().then(
              (r) => {
                report("command", id(), t, 0, null, {
                  bytes_in: Buffer.byteLength(r.stdout) + Buffer.byteLength(r.stderr),
                });
                return r;
              },
              (e) => {
                report("command", id(), t, 0, { error: e });
                throw e;
              },
            ),
        } satisfies RunnerCommandHandle;
      };
    }
    return wrapped;
  };
  const wrapped: P = Object.create(provider);
  Object.assign(wrapped, {
    id: provider.id,
    capabilities: () => provider.capabilities(),
    setupHint: () => provider.setupHint(),
    validateDestination: (d: RunnerDestination, o?: RunnerCallOptions) =>
      timed("validateDestination", null, () => provider.validateDestination(d, o)),
    createSession: (d: RunnerDestination, o?: RunnerCallOptions) =>
      timed("createSession", null, () => provider.createSession(d, o)).then(wrapSession),
    resumeSession: (st: RunnerSessionState, o?: RunnerCallOptions) =>
      timed("resumeSession", st.session_id, () => provider.resumeSession(st, o)).then(wrapSession),
  });
  return wrapped;
}

function measure(op: string, args: unknown[], result: unknown): Partial<RunnerOperationEvent> {
  if (op === "writeFile")
    return { bytes_out: (args[0] as { contents?: Uint8Array })?.contents?.byteLength ?? 0 };
  if (op === "readFile")
    return { bytes_in: (result as { contents?: Uint8Array })?.contents?.byteLength ?? 0 };
  if (op === "runCommand") {
    const r = result as { stdout?: string; stderr?: string };
    return { bytes_in: Buffer.byteLength(r?.stdout ?? "") + Buffer.byteLength(r?.stderr ?? "") };
  }
  return {};
}
