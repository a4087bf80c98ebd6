import type { RunnerOutputChunk } from "./runner-interfaces.js";

/**
 * The `output` of a command handle: chunks pushed as they arrive, read once as an async iterable. Unread
 * output is kept up to `maxPendingBytes`; past it chunks are dropped from the stream (the command's result
 * still has them).
 */
export class OutputQueue implements AsyncIterable<RunnerOutputChunk> {
  private items: RunnerOutputChunk[] = [];
  private waiters: Array<(r: IteratorResult<RunnerOutputChunk>) => void> = [];
  private done = false;
  private pending = 0;
  constructor(private readonly maxPending = 64 * 1024 * 1024) {}
  push(chunk: RunnerOutputChunk): void {
    if (this.done) return;
    const w = this.waiters.shift();
    if (w) w({ value: chunk, done: false });
    else if (this.pending < this.maxPending) {
      // Unread output is kept up to a bound; past it, chunks are dropped from the stream (the result keeps them).
      this.items.push(chunk);
      this.pending += chunk.data.length;
    }
  }
  end(): void {
    this.done = true;
    for (const w of this.waiters.splice(0)) w({ value: undefined, done: true });
  }
  [Symbol.asyncIterator](): AsyncIterator<RunnerOutputChunk> {
    return {
      next: () => {
        const item = this.items.shift();
        if (item) {
          this.pending -= item.data.length;
          return Promise.resolve({ value: item, done: false });
        }
        if (this.done) return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve) => this.waiters.push(resolve));
      },
    };
  }
}

/** Retained output shared by the commands of one session (see `OutputLog`). */
export class OutputBudget {
  used = 0;
  /** Called when a push takes the total over `max`, before the pushing log trims itself. */
  onOver?: () => void;
  constructor(readonly max: number) {}
}

/**
 * The output of one command for any number of followers: every chunk is retained (up to `maxRetainedBytes`;
 * past it the oldest are dropped) so a follower that attaches late replays what was printed, then follows
 * live. What command handles of providers with reattach are built on.
 */
export class OutputLog {
  private readonly chunks: RunnerOutputChunk[] = [];
  private retained = 0;
  private readonly followers = new Set<OutputQueue>();
  private done = false;
  /** Bytes dropped from the front of the log, per stream (a late follower misses them). */
  readonly dropped = { stdout: 0, stderr: 0 };
  /**
   * `budget`: shared by the logs of one session, so that many commands together retain at most `budget.max`
   * bytes (each log drops its own oldest chunks while the total is over it; a log ended gives its bytes back).
   */
  constructor(
    private readonly maxRetainedBytes = 16 * 1024 * 1024,
    private readonly budget?: OutputBudget,
  ) {}
  get ended(): boolean {
    return this.done;
  }
  /** Bytes this log holds for late followers. */
  get retainedBytes(): number {
    return this.retained;
  }
  push(chunk: RunnerOutputChunk): void {
    if (this.done) return;
    this.chunks.push(chunk);
    this.retained += chunk.data.length;
    if (this.budget) {
      this.budget.used += chunk.data.length;
      // The session may free others' output first (ended commands kept for a late attach).
      if (this.budget.used > this.budget.max) this.budget.onOver?.();
    }
    while (
      (this.retained > this.maxRetainedBytes || (this.budget && this.budget.used > this.budget.max)) &&
      this.chunks.length > 1
    ) {
      const old = this.chunks.shift()!;
      this.retained -= old.data.length;
      if (this.budget) this.budget.used -= old.data.length;
      this.dropped[old.stream] += old.data.length;
    }
    for (const f of this.followers) f.push(chunk);
  }
  /** Drops every retained chunk and gives its bytes back to the budget (the log is forgotten). */
  release(): void {
    if (this.budget) this.budget.used -= this.retained;
    for (const c of this.chunks) this.dropped[c.stream] += c.data.length;
    this.chunks.length = 0;
    this.retained = 0;
  }
  end(): void {
    if (this.done) return;
    this.done = true;
    for (const f of this.followers) f.end();
    this.followers.clear();
  }
  /**
   * A new follower: with `replay` (default) the retained chunks first, then live chunks until the end.
   * `offset`: the bytes of each stream the replay starts after (those dropped from the front so far).
   */
  follow(opts: { replay?: boolean } = {}): {
    output: OutputQueue;
    stop: () => void;
    offset: { stdout: number; stderr: number };
  } {
    const q = new OutputQueue();
    const offset = { ...this.dropped };
    if (opts.replay !== false) for (const c of this.chunks) q.push(c);
    if (this.done) q.end();
    else this.followers.add(q);
    return {
      output: q,
      offset,
      stop: () => {
        if (this.followers.delete(q)) q.end();
      },
    };
  }
}
