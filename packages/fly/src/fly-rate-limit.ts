import { CancelledError } from "@roder/runner-contract";

/** Requests per second and burst, per machine and action (Fly documents 1 req/s, burst 3). */
export interface FlyRateLimit {
  perSecond: number;
  burst: number;
}

/**
 * Under Fly's documented limit (1/s, burst 3): in any window of t seconds the client sends at most 2 + 0.9·t
 * requests of a key where Fly allows 3 + t, so a whole request of margin (about a second of network jitter
 * between the client's clock and the API's) is always left.
 */
export const DEFAULT_FLY_RATE_LIMIT: FlyRateLimit = { perSecond: 0.9, burst: 2 };

/**
 * A client-side limiter per key (machine + action): a generic cell rate algorithm, so each caller reserves
 * its slot at once, in call order, and sleeps until it comes. A 429 pushes the key's next slot past the
 * `Retry-After` the API gave.
 */
export class FlyRateLimiter {
  private readonly tat = new Map<string, number>();
  private lastSweep = Date.now();

  constructor(private readonly limit: FlyRateLimit) {
    if (!(limit.perSecond > 0) || !(limit.burst >= 1))
      throw new RangeError("rate limit: perSecond > 0 and burst >= 1 are required");
  }

  private get interval(): number {
    return 1000 / this.limit.perSecond;
  }

  /** Waits for a slot of `key`; rejects with CancelledError when `signal` aborts meanwhile. */
  async acquire(key: string, signal?: AbortSignal): Promise<void> {
    const now = Date.now();
    this.sweep(now);
    const tolerance = (this.limit.burst - 1) * this.interval;
    const tat = Math.max(now, this.tat.get(key) ?? now);
    const at = tat - tolerance;
    this.tat.set(key, tat + this.interval);
    const wait = at - now;
    if (wait <= 0) return;
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => {
        signal?.removeEventListener("abort", onAbort);
        resolve();
      }, wait);
      const onAbort = () => {
        clearTimeout(t);
        reject(new CancelledError({ operation: "rate limit wait" }));
      };
      if (signal?.aborted) return onAbort();
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  /** The API refused a request of `key` (429): no slot before `retryAfterMs` from now, then one at a time. */
  penalize(key: string, retryAfterMs: number): void {
    const tolerance = (this.limit.burst - 1) * this.interval;
    const next = Date.now() + retryAfterMs + tolerance;
    this.tat.set(key, Math.max(this.tat.get(key) ?? 0, next));
  }

  /** Keys whose bucket is full again carry no state: dropped, so the map does not grow with machines. */
  private sweep(now: number): void {
    if (now - this.lastSweep < 30_000 && this.tat.size < 1000) return;
    this.lastSweep = now;
    for (const [k, t] of this.tat) if (t <= now) this.tat.delete(k);
  }
}

const shared = new Map<string, FlyRateLimiter>();

/** One limiter per API base URL and limit in this process: every provider instance paces the same machines. */
export function sharedFlyRateLimiter(baseUrl: string, limit: FlyRateLimit): FlyRateLimiter {
  const key = `${baseUrl}|${limit.perSecond}|${limit.burst}`;
  let l = shared.get(key);
  if (!l) {
    l = new FlyRateLimiter(limit);
    shared.set(key, l);
  }
  return l;
}

/** The limiter key of a Machines API request: per machine and action (per app for create and list). */
export function rateLimitKey(method: string, path: string): string {
  const parts = path.split("?")[0]!.split("/").filter(Boolean);
  // /apps/{app}/machines[/{id}[/{action}]]
  const app = parts[1] ?? "";
  const id = parts[3];
  if (!id) return `app:${app}:${method === "POST" ? "create" : "list"}`;
  const action = parts[4] ?? (method === "DELETE" ? "delete" : method === "GET" ? "get" : "update");
  return `machine:${id}:${action}`;
}
