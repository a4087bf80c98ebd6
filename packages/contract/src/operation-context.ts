import { AsyncLocalStorage } from "node:async_hooks";

/** What an observed operation accumulates while it runs (see `withObserver`). */
export interface OperationContext {
  retries: number;
}

const storage = new AsyncLocalStorage<OperationContext>();

/** Runs `fn` with a fresh operation context; `withRetry` counts its retries into it. */
export function runInOperationContext<T>(ctx: OperationContext, fn: () => Promise<T>): Promise<T> {
  return storage.run(ctx, fn);
}

/** Called by retry loops before each retry: counted in the current operation's event, if observed. */
export function noteRetry(): void {
  const ctx = storage.getStore();
  if (ctx) ctx.retries += 1;
}
