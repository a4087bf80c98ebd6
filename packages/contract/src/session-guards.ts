import { RunnerError } from "./errors/index.js";

/**
 * Checks every provider makes the same way on a session call's input, with the same typed error and words.
 */

/** A port a command can listen on and a preview can forward: 1..65535 (the wire type also admits 0). */
export function checkPort(port: number): void {
  if (!Number.isInteger(port) || port < 1 || port > 65535)
    throw new RunnerError("invalid_request", `port must be 1..65535, got ${port}`);
}

/** A terminal size: `{ cols, rows }`, whole numbers 1..65535. */
export function isTerminalSize(p: unknown): p is { cols: number; rows: number } {
  const { cols, rows } = (p ?? {}) as { cols?: unknown; rows?: unknown };
  const ok = (n: unknown) => Number.isInteger(n) && (n as number) >= 1 && (n as number) <= 65535;
  return ok(cols) && ok(rows);
}

/** `startCommand`'s `pty` option: `{ cols, rows }` or a typed `invalid_request`. */
export function checkPty(pty: unknown): asserts pty is { cols: number; rows: number } {
  if (!isTerminalSize(pty))
    throw new RunnerError(
      "invalid_request",
      `pty must be { cols, rows } with whole numbers 1..65535, got ${JSON.stringify(pty)}`,
    );
}

/** `handle.resize(cols, rows)`'s arguments, or a typed `invalid_request`. */
export function checkTerminalSize(cols: number, rows: number): void {
  if (!isTerminalSize({ cols, rows }))
    throw new RunnerError(
      "invalid_request",
      `terminal size must be whole numbers 1..65535, got ${cols}x${rows}`,
    );
}
