import { randomBytes } from "node:crypto";
import type { RemoteRunnerSession, RunnerCommandHandle } from "@roder/runner-contract";

/**
 * A process's stdin (envd `Start` with `stdin: true`) or terminal (`Start` with `pty`), built from the sandbox's
 * own tools because the backend's commands take no input stream: the process reads a FIFO in the sandbox's
 * `/tmp`, kept open by a holder process so that it sees EOF only when stdin is closed (`CloseStdin` ends the
 * holder); `SendInput` writes into the FIFO through a short command (the bytes travel in its environment, never
 * its argv). A PTY is util-linux `script` between that FIFO and a pseudo-terminal of the sandbox: it echoes
 * and answers `tput` as a terminal does, starts at the asked size, and `Update` resizes it (`stty -F`, which
 * signals SIGWINCH to the terminal's foreground process group).
 */
export interface ProcessInput {
  readonly pty: boolean;
  write(data: Uint8Array): Promise<void>;
  /** Ends stdin (the process reads EOF). Idempotent. */
  close(): Promise<void>;
  resize(cols: number, rows: number): Promise<void>;
  /** Removes the FIFO and ends the holder (when the process has ended). */
  dispose(): Promise<void>;
}

const DIR = "/tmp/.e2b-standin";
/** Bytes per write command: their base64 must fit one environment string (Linux: 128 KiB). */
const CHUNK = 64 * 1024;

// Waits (at most 5 s) for the terminal's name, which the process writes once it has its starting size.
const RESIZE =
  'i=0; while [ ! -s "$1" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done; stty -F "$(cat "$1")" cols "$2" rows "$3"';

const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

const cmd = (program: string, args: string[], env: Array<[string, string]> = []) => ({
  command_id: `envd-in-${randomBytes(4).toString("hex")}`,
  program,
  args,
  env,
});

/**
 * Prepares the FIFO and holder, and returns the command to start instead of `program args`, reading it (or
 * running under a terminal of `pty` size).
 */
export async function prepareInput(
  session: RemoteRunnerSession,
  key: string,
  program: string,
  args: string[],
  pty: { cols: number; rows: number } | undefined,
): Promise<{ input: ProcessInput; program: string; args: string[] }> {
  const fifo = `${DIR}/${key}.in`;
  const ttyFile = `${DIR}/${key}.tty`;
  const made = await session.runCommand(
    cmd("sh", ["-c", 'mkdir -p "$1" && rm -f "$2" && mkfifo -m 600 "$2"', "sh", DIR, fifo]),
  );
  if (made.exit_code !== 0) throw new Error(`cannot make the stdin pipe: ${made.stderr.trim()}`);
  // Opened read-write, the FIFO never blocks the holder and never reports EOF while it lives.
  const holder: RunnerCommandHandle = await session.startCommand!(
    cmd("sh", ["-c", 'exec sleep 2147483647 3<>"$1"', "sh", fifo]),
  );
  void (async () => {
    for await (const _ of holder.output);
  })();
  let closed = false;
  let queue: Promise<unknown> = Promise.resolve();
  const serial = <T>(f: () => Promise<T>): Promise<T> => {
    const next = queue.then(f, f);
    queue = next.catch(() => {});
    return next;
  };
  const input: ProcessInput = {
    pty: pty !== undefined,
    write: (data) =>
      serial(async () => {
        if (closed) throw new Error("stdin not enabled or closed");
        for (let at = 0; at < data.length || at === 0; at += CHUNK) {
          const part = Buffer.from(data.subarray(at, at + CHUNK)).toString("base64");
          const r = await session.runCommand(
            cmd(
              "sh",
              ["-c", 'printf %s "$E2B_STANDIN_INPUT" | base64 -d > "$1"', "sh", fifo],
              [["E2B_STANDIN_INPUT", part]],
            ),
          );
          if (r.exit_code !== 0) throw new Error(`error writing to stdin: ${r.stderr.trim()}`);
          if (data.length === 0) break;
        }
      }),
    close: () =>
      serial(async () => {
        if (closed) return;
        closed = true;
        await holder.kill("SIGKILL").catch(() => false);
        await holder.wait().catch(() => {});
      }),
    resize: (cols, rows) =>
      serial(async () => {
        const r = await session.runCommand(
          cmd("sh", ["-c", RESIZE, "sh", ttyFile, String(cols), String(rows)]),
        );
        if (r.exit_code !== 0) throw new Error(`error resizing tty: ${r.stderr.trim()}`);
      }),
    async dispose() {
      closed = true;
      await holder.kill("SIGKILL").catch(() => false);
      await session.runCommand(cmd("rm", ["-f", fifo, ttyFile])).catch(() => {});
    },
  };
  if (!pty) {
    return {
      input,
      program: "sh",
      args: ["-c", 'f=$1; shift; exec "$@" < "$f"', "sh", fifo, program, ...args],
    };
  }
  const inner = `stty cols ${pty.cols} rows ${pty.rows}; tty > ${quote(ttyFile)}; exec ${[program, ...args].map(quote).join(" ")}`;
  return {
    input,
    program: "sh",
    args: ["-c", 'f=$1; shift; exec script -qfe -c "$1" /dev/null < "$f"', "sh", fifo, inner],
  };
}
