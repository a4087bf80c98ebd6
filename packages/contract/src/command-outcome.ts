import type { RunnerCommandResult } from "./schemas.js";

/**
 * The wire `RunnerCommandResult` has four fields, so a provider reports a timeout or truncated output with
 * a marker line appended to `stderr` (or `stdout` for stdout truncation). These helpers write and detect them.
 */
const PREFIX = "\n[roder-runner: ";

/** Appended to a stream whose output passed the cap. */
export function truncationMarker(droppedBytes: number): string {
  return `${PREFIX}output truncated, ${droppedBytes} bytes dropped]\n`;
}

/** Appended to `stderr` of a command killed at its `timeout_ms`. */
export function timeoutMarker(timeoutMs: number): string {
  return `${PREFIX}command timed out after ${timeoutMs} ms and was killed]\n`;
}

/** Appended to `stderr` of a command killed by `cancelCommand`. */
export function cancelledMarker(): string {
  return `${PREFIX}command cancelled]\n`;
}

export interface CommandOutcome {
  /** Exited by itself with this code. */
  exitCode: number | null;
  timedOut: boolean;
  cancelled: boolean;
  /** Bytes dropped from each stream past the output cap, if any. */
  stdoutTruncatedBytes: number | null;
  stderrTruncatedBytes: number | null;
}

const truncRe = /\n\[roder-runner: output truncated, (\d+) bytes dropped\]\n$/;

/** Reads the markers of a result. */
export function commandOutcome(result: RunnerCommandResult): CommandOutcome {
  const so = truncRe.exec(result.stdout);
  const se = /\n\[roder-runner: output truncated, (\d+) bytes dropped\]\n/.exec(result.stderr);
  return {
    exitCode: result.exit_code,
    timedOut:
      result.exit_code === null && /\n\[roder-runner: command timed out after \d+ ms/.test(result.stderr),
    cancelled: result.exit_code === null && result.stderr.includes(`${PREFIX}command cancelled]`),
    stdoutTruncatedBytes: so ? Number(so[1]) : null,
    stderrTruncatedBytes: se ? Number(se[1]) : null,
  };
}
