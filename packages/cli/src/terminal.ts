import { fstatSync } from "node:fs";
import type { RunnerCommandHandle } from "@roder/runner-contract";

/**
 * How `exec` attaches this process's stdin to the command:
 * - `pty`: `-t`, the command runs on a terminal (sized from ours, resized on SIGWINCH); our stdin is forwarded,
 *   raw when it is a terminal (Ctrl-C reaches the command as on any terminal).
 * - `interactive`: `-i`, stdin is forwarded as it comes (a terminal's lines too); end of input closes it.
 * - `piped`: neither flag, and stdin is a pipe, a socket or a non-empty file: forwarded, then closed.
 * - `none`: stdin is a terminal (without `-i`), /dev/null, an empty file, or it carries the session state.
 */
export type StdinMode = "pty" | "interactive" | "piped" | "none";

export function stdinMode(opts: { tty: boolean; interactive: boolean; stateOnStdin: boolean }): StdinMode {
  if (opts.tty) return "pty";
  if (opts.interactive) return "interactive";
  if (opts.stateOnStdin || process.stdin.isTTY) return "none";
  try {
    const st = fstatSync(0);
    if (st.isFIFO() || st.isSocket()) return "piped";
    if (st.isFile() && st.size > 0) return "piped";
  } catch {
    // no stdin at all (closed descriptor)
  }
  return "none";
}

/** Terminal size: ours (stdout, else stderr), else COLUMNS / LINES, else 80x24. */
export function terminalSize(env: Record<string, string | undefined>): { cols: number; rows: number } {
  for (const s of [process.stdout, process.stderr])
    if (s.isTTY && s.columns > 0 && s.rows > 0) return { cols: s.columns, rows: s.rows };
  const n = (v: string | undefined, d: number) => {
    const x = Number(v);
    return Number.isInteger(x) && x > 0 && x <= 65535 ? x : d;
  };
  return { cols: n(env.COLUMNS, 80), rows: n(env.LINES, 24) };
}

/**
 * Forwards stdin to a running command (writes awaited one after the other, so the pipe's backpressure reaches
 * our stdin) and, for a PTY, our terminal's size changes. Returns a stop function that undoes everything
 * (terminal mode, listeners); input after the command ends is dropped.
 */
export function forwardInput(
  handle: RunnerCommandHandle,
  mode: StdinMode,
  env: Record<string, string | undefined>,
): () => void {
  if (mode === "none") return () => {};
  const stdin = process.stdin;
  const raw = mode === "pty" && stdin.isTTY === true;
  if (raw) stdin.setRawMode(true);
  let stopped = false;
  // Writes and resizes in the order they happened.
  let chain: Promise<unknown> = Promise.resolve();
  const queue = (fn: () => Promise<unknown>) => {
    chain = chain.then(fn).catch(() => {
      // the command ended or closed its stdin: the rest of the input has nowhere to go
      stopped = true;
    });
  };
  const onData = (chunk: Buffer) => {
    if (stopped) return;
    stdin.pause();
    queue(async () => {
      await handle.write!(chunk);
      if (!stopped) stdin.resume();
    });
  };
  const onEnd = () => queue(async () => handle.closeStdin?.());
  const onResize = () => {
    const { cols, rows } = terminalSize(env);
    queue(async () => handle.resize?.(cols, rows));
  };
  stdin.on("data", onData);
  stdin.on("end", onEnd);
  stdin.on("error", onEnd);
  if (mode === "pty") process.on("SIGWINCH", onResize);
  const restore = () => {
    if (raw) stdin.setRawMode(false);
  };
  process.once("exit", restore);
  return () => {
    stopped = true;
    stdin.off("data", onData);
    stdin.off("end", onEnd);
    stdin.off("error", onEnd);
    process.off("SIGWINCH", onResize);
    stdin.pause();
    restore();
    process.off("exit", restore);
  };
}

/**
 * For a piped stdin that the provider cannot take: calls `onInput` once if input actually arrives (an empty or
 * idle pipe says nothing). Returns a stop function.
 */
export function onDroppedInput(onInput: () => void): () => void {
  const stdin = process.stdin;
  let said = false;
  const onData = () => {
    if (!said) onInput();
    said = true;
  };
  stdin.on("data", onData);
  stdin.on("error", () => {});
  return () => {
    stdin.off("data", onData);
    stdin.pause();
  };
}
