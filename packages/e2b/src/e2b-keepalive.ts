import { SessionNotFoundError } from "@roder/runner-contract";

/**
 * Liveness: E2B kills the sandbox when its timeout passes, whatever it runs. Each operation moves the timeout
 * to now + ttl (at most once per `intervalMs`); when half the ttl has passed since the last move, the
 * operation waits for it, so a sandbox close to its end is extended before it is used (or found gone: a
 * typed SessionNotFoundError). While commands run, a timer moves it too (a command is use, however quiet).
 */
export class E2bKeepAlive {
  /** When the sandbox's timeout was last set to now + ttl (create and connect set it too). */
  private extendedAt = Date.now();
  private extending: Promise<void> | undefined;
  private timer: ReturnType<typeof setInterval> | undefined;

  constructor(
    private readonly o: {
      ttlMs: number;
      intervalMs: number;
      /** `Sandbox.setTimeout(ms)`. */
      extend: (ms: number) => Promise<void>;
      /** The typed error of a failed extension. */
      map: (error: unknown) => unknown;
    },
  ) {}

  /** Moves the timeout before an operation (waiting for it when the sandbox is past half its ttl). */
  async touch(): Promise<void> {
    const since = Date.now() - this.extendedAt;
    if (since < this.o.intervalMs) return;
    const moved = this.extend();
    // Only a sandbox found gone fails the operation: another failure to extend leaves it to the next one.
    const settled = moved.catch((error: unknown) => {
      if (SessionNotFoundError.isInstance(error)) throw error;
    });
    if (since >= this.o.ttlMs / 2) await settled;
    else settled.catch(() => {});
  }

  private extend(): Promise<void> {
    this.extending ??= (async () => {
      const at = Date.now();
      try {
        await this.o.extend(this.o.ttlMs);
        this.extendedAt = Math.max(this.extendedAt, at);
      } catch (error) {
        throw this.o.map(error);
      } finally {
        this.extending = undefined;
      }
    })();
    return this.extending;
  }

  /** Starts or stops the timer: `want` while commands this client follows run in an open sandbox. */
  update(want: boolean): void {
    if (want && !this.timer) {
      this.timer = setInterval(() => {
        if (Date.now() - this.extendedAt >= this.o.intervalMs) this.extend().catch(() => {});
      }, this.o.intervalMs);
      this.timer.unref();
    } else if (!want && this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }
}
