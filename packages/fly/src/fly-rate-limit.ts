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

interface Waiter {
  resolve: () => void;
  reject: (e: unknown) => void;
  signal?: AbortSignal | undefined;
  onAbort?: () => void;
}

interface Bucket {
  tokens: number;
  at: number;
  /** No request before this time (a 429's Retry-After). */
  blockedUntil: number;
  queue: Waiter[];
  timer?: NodeJS.Timeout | undefined;
}

/**
 * A client-side token bucket per key (machine + action) with a queue: callers are let through in call order,
 * each when a token is there by the clock at that moment, so a late timer (a busy event loop) never lets a
 * backlog through at once. A 429 empties the key's bucket until the `Retry-After` the API gave.
 */
export class FlyRateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private lastSweep = Date.now();

  constructor(
    private readonly limit: FlyRateLimit,
    /** Called as each caller is let through (its key and the clock then): for tests and diagnostics. */
    private readonly onRelease?: (key: string, at: number) => void,
  ) {
    if (!(limit.perSecond > 0) || !(limit.burst >= 1))
      throw new RangeError("rate limit: perSecond > 0 and burst >= 1 are required");
  }

  /** Waits for a token of `key`; rejects with CancelledError when `signal` aborts meanwhile. */
  acquire(key: string, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(new CancelledError({ operation: "rate limit wait" }));
    const b = this.bucket(key);
    return new Promise<void>((resolve, reject) => {
      const w: Waiter = { resolve, reject, signal };
      if (signal) {
        w.onAbort = () => {
          const i = b.queue.indexOf(w);
          if (i >= 0) b.queue.splice(i, 1);
          reject(new CancelledError({ operation: "rate limit wait" }));
          this.pump(key, b);
        };
        signal.addEventListener("abort", w.onAbort, { once: true });
      }
      b.queue.push(w);
      this.pump(key, b);
    });
  }

  /** The API refused a request of `key` (429): no token before `retryAfterMs` from now. */
  penalize(key: string, retryAfterMs: number): void {
    const b = this.bucket(key);
    this.refill(b, Date.now());
    b.tokens = Math.min(b.tokens, 0);
    b.blockedUntil = Math.max(b.blockedUntil, Date.now() + retryAfterMs);
  }

  private bucket(key: string): Bucket {
    const now = Date.now();
    if (now - this.lastSweep > 30_000) {
      // Buckets that are full again carry no state: dropped, so the map does not grow with machines.
      this.lastSweep = now;
      for (const [k, x] of this.buckets) {
        this.refill(x, now);
        if (!x.queue.length && x.tokens >= this.limit.burst - 1e-9 && now >= x.blockedUntil)
          this.buckets.delete(k);
      }
    }
    let b = this.buckets.get(key);
    if (!b) {
      b = { tokens: this.limit.burst, at: Date.now(), blockedUntil: 0, queue: [] };
      this.buckets.set(key, b);
    }
    return b;
  }

  private refill(b: Bucket, now: number): void {
    b.tokens = Math.min(this.limit.burst, b.tokens + ((now - b.at) / 1000) * this.limit.perSecond);
    b.at = now;
  }

  private pump(key: string, b: Bucket): void {
    clearTimeout(b.timer);
    b.timer = undefined;
    const now = Date.now();
    this.refill(b, now);
    while (b.queue.length && now >= b.blockedUntil && b.tokens >= 1) {
      b.tokens -= 1;
      this.onRelease?.(key, now);
      const w = b.queue.shift()!;
      if (w.onAbort) w.signal?.removeEventListener("abort", w.onAbort);
      w.resolve();
    }
    if (b.queue.length) {
      const wait = Math.max(b.blockedUntil - now, ((1 - b.tokens) / this.limit.perSecond) * 1000, 1);
      b.timer = setTimeout(() => this.pump(key, b), wait);
    }
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
