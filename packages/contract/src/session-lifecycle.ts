import { CancelledError, RunnerError, SessionNotFoundError } from "./errors/index.js";

export interface SessionLifecycleArgs {
  providerId: string;
  /** The session's id, asked when an error is made. */
  sessionId: () => string;
  /**
   * What the provider calls the thing the session runs on (`machine`, `sandbox`): the errors then say
   * "sandbox sb-1 is paused" and "session (sandbox sb-1) is closed"; without it, "session 's-1' is closed".
   */
  noun?: string;
  /** The provider's word for paused (Fly: `suspended`). Default `paused`. */
  pausedAs?: string;
}

/**
 * A session's open → paused → closed life, and the one guard every session method calls first: a paused session
 * refuses with a typed `session_paused` (resume it from its state), a closed one with `SessionNotFoundError`.
 */
export class SessionLifecycle {
  private isPaused = false;
  private isClosed = false;

  constructor(private readonly args: SessionLifecycleArgs) {}

  get paused(): boolean {
    return this.isPaused;
  }

  get closed(): boolean {
    return this.isClosed;
  }

  /**
   * Throws unless the session can be used now. With a signal, an aborted one is a `CancelledError` of
   * `operation` first (before the session is asked).
   */
  ensureOpen(signal?: AbortSignal, operation = "call"): void {
    if (signal?.aborted) throw new CancelledError({ operation });
    const { providerId, noun } = this.args;
    const id = this.args.sessionId();
    if (this.isPaused)
      throw new RunnerError(
        "session_paused",
        `${noun ? `${noun} ${id}` : `session '${id}'`} is ${this.args.pausedAs ?? "paused"}: resume it with provider.resumeSession(session.state())`,
      );
    if (this.isClosed)
      throw new SessionNotFoundError({
        providerId,
        sessionId: id,
        message: noun ? `session (${noun} ${id}) is closed` : `session '${id}' is closed`,
      });
  }

  /**
   * `fn` behind the guard: each call passes `ensureOpen` first (a refusal is the returned promise's rejection, as
   * from an async method). A session method that only hands its call on is then one line:
   * `readonly readFile = this.life.guard((request, options) => inner.readFile(request, options))`.
   */
  guard<A extends unknown[], R>(fn: (...args: A) => Promise<R>): (...args: A) => Promise<R> {
    return async (...args) => {
      this.ensureOpen();
      return fn(...args);
    };
  }

  /** Marks the session paused (after the provider paused it). */
  markPaused(): void {
    this.isPaused = true;
  }

  /** Marks the session closed; `false` when it already was (close is idempotent: the caller then returns). */
  markClosed(): boolean {
    if (this.isClosed) return false;
    this.isClosed = true;
    return true;
  }
}
