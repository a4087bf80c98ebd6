import type { RunnerCommandHandle } from "@roder/runner-contract";
import { HttpError } from "./http-server-policy.js";

/**
 * A running command's stdin, as the server serves it: writes carry the byte offset they start at, so a write the
 * client resends (its answer was lost) is applied once. `offset` is how many bytes the command has taken.
 *
 * - `POST /sessions/{id}/commands/{cid}/stdin?offset=N` (raw bytes) → `{ offset }`: bytes before the server's
 *   offset are skipped (already applied), the rest written; an offset past it is a 409 `stdin_gap` naming the
 *   offset expected (bytes were lost in between: nothing is written).
 * - `POST …/stdin/close` → 204 (idempotent).
 * - `POST …/resize` `{ cols, rows }` → 204 (a command started with `pty`).
 */
export class CommandInputs {
  private readonly inputs = new Map<
    string,
    { handle: RunnerCommandHandle; offset: number; chain: Promise<unknown>; closed: boolean }
  >();

  /** Keeps a command's handle for its stdin while it runs (the first handle that can write). */
  register(handle: RunnerCommandHandle): void {
    if (typeof handle.write !== "function" || this.inputs.has(handle.commandId)) return;
    const entry = { handle, offset: 0, chain: Promise.resolve() as Promise<unknown>, closed: false };
    this.inputs.set(handle.commandId, entry);
    void handle
      .wait()
      .catch(() => {})
      .finally(() => {
        if (this.inputs.get(handle.commandId) === entry) this.inputs.delete(handle.commandId);
      });
  }

  /** The stdin offset of a command (0 for one that takes no input). */
  offset(commandId: string): number {
    return this.inputs.get(commandId)?.offset ?? 0;
  }

  private entry(commandId: string) {
    const e = this.inputs.get(commandId);
    if (!e)
      throw new HttpError(
        409,
        "stdin_closed",
        `command '${commandId}' is not running with its stdin open (start it with stdin: true or pty)`,
      );
    return e;
  }

  /** Applies one write at `offset`, serialized with the command's other writes. */
  write(commandId: string, offset: number, data: Buffer): Promise<number> {
    const e = this.entry(commandId);
    const run = e.chain.then(async () => {
      if (offset > e.offset)
        throw new HttpError(
          409,
          "stdin_gap",
          `stdin write at offset ${offset}, but the command has taken ${e.offset} bytes: bytes in between were never received`,
        );
      const fresh = data.subarray(Math.min(data.length, e.offset - offset));
      if (fresh.length === 0) return e.offset;
      if (e.closed) throw new HttpError(409, "stdin_closed", `the stdin of command '${commandId}' is closed`);
      await e.handle.write!(new Uint8Array(fresh.buffer, fresh.byteOffset, fresh.byteLength));
      e.offset += fresh.length;
      return e.offset;
    });
    e.chain = run.catch(() => {});
    return run;
  }

  close(commandId: string): Promise<void> {
    const e = this.inputs.get(commandId);
    if (!e || e.closed) return Promise.resolve();
    const run = e.chain.then(async () => {
      if (e.closed) return;
      e.closed = true;
      await e.handle.closeStdin?.();
    });
    e.chain = run.catch(() => {});
    return run;
  }

  async resize(commandId: string, cols: number, rows: number): Promise<void> {
    const e = this.entry(commandId);
    if (typeof e.handle.resize !== "function")
      throw new HttpError(
        409,
        "not_a_terminal",
        `command '${commandId}' was not started on a terminal (pty)`,
      );
    await e.handle.resize(cols, rows);
  }
}

/** `stdin` and `pty` of a start request's body (beside the command request's own fields). */
export function interactiveOptions(body: string): { stdin?: true; pty?: { cols: number; rows: number } } {
  const raw = JSON.parse(body) as { stdin?: unknown; pty?: unknown };
  const out: { stdin?: true; pty?: { cols: number; rows: number } } = {};
  if (raw.stdin !== undefined && raw.stdin !== null && typeof raw.stdin !== "boolean")
    throw new HttpError(400, "invalid_request", "stdin must be a boolean");
  if (raw.stdin === true) out.stdin = true;
  if (raw.pty !== undefined && raw.pty !== null) {
    const { cols, rows } = raw.pty as { cols?: unknown; rows?: unknown };
    out.pty = terminalSize(cols, rows);
  }
  return out;
}

export function terminalSize(cols: unknown, rows: unknown): { cols: number; rows: number } {
  const ok = (n: unknown) => Number.isInteger(n) && (n as number) >= 1 && (n as number) <= 65535;
  if (!ok(cols) || !ok(rows))
    throw new HttpError(400, "invalid_request", "a terminal size is { cols, rows }, whole numbers 1..65535");
  return { cols: cols as number, rows: rows as number };
}
