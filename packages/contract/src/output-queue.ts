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
