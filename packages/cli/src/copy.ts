import { once } from "node:events";
import {
  accessSync,
  constants,
  createReadStream,
  createWriteStream,
  fstatSync,
  rmSync,
  statSync,
} from "node:fs";
import { dirname, resolve } from "node:path";
import type { Readable, Writable } from "node:stream";
import {
  CancelledError,
  type RemoteRunnerSession,
  RunnerError,
  UnsupportedCapabilityError,
} from "@roder/runner-contract";
import type { Progress } from "./progress.js";

/**
 * `cp` with bounded memory. Where the provider streams files (`readFileStream` / `writeFileStream`: local, http)
 * the CLI uses that. Elsewhere, past a small size, it streams through a command in the session: `cat > PATH` fed through the command's stdin (each
 * write awaited: the pipe's backpressure reaches the source file), and a small range server (`tail | head`
 * per 4 MiB range asked for on its stdin) whose output is pulled no faster than the destination takes it.
 * Small files, and providers without `startCommand` (or without stdin on it), use the whole-file calls.
 */
export const STREAM_ABOVE = 1024 * 1024;

/** Refused before anything runs: the same words as the runner's own path check. */
export function checkRunnerPath(path: string): void {
  if (path === "") throw new RunnerError("path_outside_workspace", "empty runner path");
  if (path.includes("\u0000"))
    throw new RunnerError("path_outside_workspace", "runner path holds a NUL byte");
  if (path.split("/").includes(".."))
    throw new RunnerError("path_outside_workspace", `path "${path}" is refused: '..' leaves the workspace`);
}

/** Fails (a file-system error naming the path) when `dst` cannot be written: checked before a session is made. */
export function checkDestination(dst: string): void {
  if (dst === "-") return;
  const st = statSync(dst, { throwIfNoEntry: false });
  if (st?.isDirectory())
    throw Object.assign(new Error(`${dst} is a directory`), { code: "EISDIR", syscall: "write", path: dst });
  accessSync(st ? dst : dirname(resolve(dst)), constants.W_OK);
}

/** A host path or stdin (`-`) as a stream, with its size when known. */
export function openSource(src: string): { stream: Readable; size: number | undefined } {
  if (src === "-") {
    const st = fstatSync(0);
    return { stream: process.stdin, size: st.isFile() ? st.size : undefined };
  }
  const st = statSync(src);
  if (st.isDirectory())
    throw Object.assign(new Error(`${src} is a directory`), { code: "EISDIR", syscall: "read", path: src });
  return { stream: createReadStream(src, { highWaterMark: 256 * 1024 }), size: st.size };
}

const commandId = (what: string) => `cli-cp-${what}-${process.pid}-${Date.now()}`;

/** First line of a failed helper command's stderr, for the error. */
const why = (stderr: string) =>
  stderr
    .split("\n")
    .find((l) => l.trim())
    ?.replace(/^(sh|cat|wc|mkdir): (\d+: )?/, "") ?? "failed";

export async function upload(
  session: RemoteRunnerSession,
  src: string,
  dst: string,
  progress: (total: number | undefined) => Progress,
  signal?: AbortSignal,
): Promise<number> {
  checkRunnerPath(dst);
  const { stream, size } = openSource(src);
  const bar = progress(size);
  if (session.writeFileStream) {
    // The provider streams files itself (atomic: a failed copy leaves the old file).
    let n = 0;
    const counted = (async function* () {
      for await (const c of stream) {
        n += (c as Buffer).length;
        bar.update(n);
        yield c as Uint8Array;
      }
    })();
    const { bytes } = await session.writeFileStream({ path: dst }, counted, { signal });
    bar.done();
    return bytes;
  }
  const small = size !== undefined && size <= STREAM_ABOVE;
  if (!small && session.startCommand) {
    const sent = await uploadStreaming(session, stream, dst, bar, signal);
    if (sent !== null) return sent;
  }
  // Whole file: a small one, or a provider that cannot stream stdin.
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of stream) {
    chunks.push(c as Buffer);
    n += (c as Buffer).length;
    bar.update(n);
  }
  await session.writeFile({ path: dst, contents: new Uint8Array(Buffer.concat(chunks)) }, { signal });
  bar.done();
  return n;
}

type CommandHandle = Awaited<ReturnType<NonNullable<RemoteRunnerSession["startCommand"]>>>;
type StdinHandle = CommandHandle & Required<Pick<CommandHandle, "write" | "closeStdin">>;

/**
 * Starts `sh` with `args` and its stdin open: the handle, with `write` and `closeStdin`, or null when the
 * provider cannot take stdin (then nothing ran, or what started was killed).
 */
async function startWithStdin(
  session: RemoteRunnerSession,
  what: "in" | "out",
  args: string[],
  signal: AbortSignal | undefined,
): Promise<StdinHandle | null> {
  let handle: CommandHandle;
  try {
    handle = await session.startCommand!(
      { command_id: commandId(what), program: "sh", args, stdin: true },
      { signal },
    );
  } catch (error) {
    if (UnsupportedCapabilityError.isInstance(error)) return null;
    throw error;
  }
  if (!handle.write || !handle.closeStdin) {
    await handle.kill();
    await handle.wait();
    return null;
  }
  return handle as StdinHandle;
}

/** Null when the provider cannot take stdin (nothing was written yet). */
async function uploadStreaming(
  session: RemoteRunnerSession,
  stream: Readable,
  dst: string,
  bar: Progress,
  signal: AbortSignal | undefined,
): Promise<number | null> {
  const script = 'mkdir -p -- "$(dirname -- "$1")" && exec cat > "$1"';
  const handle = await startWithStdin(session, "in", ["-c", script, "sh", dst], signal);
  if (!handle) return null;
  let stderr = "";
  const drain = (async () => {
    for await (const c of handle.output) if (c.stream === "stderr") stderr += Buffer.from(c.data).toString();
  })();
  let n = 0;
  let failed: unknown;
  try {
    for await (const c of stream) {
      await handle.write(c as Buffer);
      n += (c as Buffer).length;
      bar.update(n);
    }
    await handle.closeStdin();
  } catch (error) {
    failed = error;
    await handle.kill().catch(() => false);
  }
  const result = await handle.wait();
  await drain;
  bar.done();
  if (signal?.aborted) throw new CancelledError({ operation: "cp" });
  if (result.exit_code !== 0)
    throw new RunnerError("io_error", `cannot write runner:${dst}: ${why(stderr || result.stderr)}`);
  if (failed) throw failed;
  return n;
}

/**
 * Serves `off len` requests read from stdin: exactly `len` bytes of the file from `off` (zero-padded should
 * the file shrink meanwhile, so the stream never stalls; the size checked after the copy tells it was cut), as
 * base64: some providers' command output is text (E2B's SDK decodes it as UTF-8), base64 passes every one.
 */
const RANGE_SERVER = `while read off len; do
  { tail -c +$((off + 1)) -- "$1" | head -c "$len"; head -c "$len" /dev/zero; } | head -c "$len" | base64
done`;
const CHUNK = 8 * 1024 * 1024;

export async function download(
  session: RemoteRunnerSession,
  src: string,
  dst: string,
  out: (s: Uint8Array) => void,
  progress: (total: number | undefined) => Progress,
  signal?: AbortSignal,
): Promise<number> {
  checkRunnerPath(src);
  if (session.readFileStream) {
    // The provider streams files itself: its size first, then the bytes as the destination takes them.
    const file = await session.readFileStream({ path: src }, { signal });
    const bar = progress(file.size);
    const n = await drainTo(file.body, dst, bar);
    if (n !== file.length)
      throw new RunnerError(
        "io_error",
        `runner:${src} changed while it was copied (${n} of ${file.length} bytes)`,
      );
    return n;
  }
  const size = session.startCommand ? await sizeOf(session, src, signal) : undefined;
  const bar = progress(size);
  if (size !== undefined && size > STREAM_ABOVE) {
    const n = await downloadRanges(session, src, dst, size, bar, signal);
    if (n !== null) return n;
  }
  // Whole file: a small one, or a provider that cannot stream.
  const r = await session.readFile({ path: src }, { signal });
  bar.update(r.contents.length);
  if (dst === "-") out(r.contents);
  else await writeAll(dst, r.contents);
  bar.done();
  return r.contents.length;
}

/**
 * Pulls the file in 8 MiB ranges, two requested ahead: the command produces output only when asked, so
 * nothing piles up unread whatever the speed of the destination. Null when the provider cannot take stdin.
 */
async function downloadRanges(
  session: RemoteRunnerSession,
  src: string,
  dst: string,
  size: number,
  bar: Progress,
  signal: AbortSignal | undefined,
): Promise<number | null> {
  const handle = await startWithStdin(session, "out", ["-c", RANGE_SERVER, "sh", src], signal);
  if (!handle) return null;
  const sink: Writable = dst === "-" ? process.stdout : createWriteStream(dst);
  let sinkError: unknown;
  sink.on("error", (error) => {
    sinkError ??= error;
  });
  // Ranges asked for, in order: each arrives as base64 of known length (newlines aside).
  const asked: number[] = [];
  let requested = 0;
  const ask = async () => {
    if (requested >= size) return;
    const len = Math.min(CHUNK, size - requested);
    await handle.write(`${requested} ${len}\n`);
    asked.push(len);
    requested += len;
  };
  let received = 0;
  let text = ""; // base64 of the current range so far
  let stderr = "";
  let failed: unknown;
  try {
    await ask();
    await ask();
    for await (const c of handle.output) {
      if (c.stream === "stderr") {
        stderr += Buffer.from(c.data).toString();
        continue;
      }
      let piece = Buffer.from(c.data).toString("latin1").replace(/\s+/g, "");
      while (piece.length > 0 && asked.length > 0) {
        const want = Math.ceil(asked[0]! / 3) * 4;
        const take = piece.slice(0, want - text.length);
        text += take;
        piece = piece.slice(take.length);
        if (text.length < want) break;
        const bytes = Buffer.from(text, "base64");
        text = "";
        asked.shift();
        received += bytes.length;
        if (sinkError) throw sinkError;
        if (!sink.write(bytes)) await once(sink, "drain");
        bar.update(received);
        // One more range asked for each one done (two stay in flight); stdin closed once all have come.
        if (requested < size) await ask();
        else if (asked.length === 0) await handle.closeStdin();
      }
    }
  } catch (error) {
    failed = error;
    await handle.kill().catch(() => false);
  }
  const result = await handle.wait();
  if (dst !== "-" && !sink.closed) {
    sink.end();
    await once(sink, "close").catch(() => {});
  }
  bar.done();
  failed ??= sinkError;
  if (signal?.aborted) failed ??= new CancelledError({ operation: "cp" });
  const after = failed || result.exit_code !== 0 ? undefined : await sizeOf(session, src, signal);
  const problem = failed
    ? undefined
    : result.exit_code !== 0
      ? `cannot read runner:${src}: ${why(stderr || result.stderr)}`
      : received !== size || after !== size
        ? `runner:${src} changed while it was copied (${size} bytes when it started, ${after ?? "?"} at the end)`
        : undefined;
  if (failed || problem) {
    if (dst !== "-") rmSync(dst, { force: true });
    if (failed) throw failed;
    throw new RunnerError("io_error", problem!);
  }
  return received;
}

/** Writes `body` to `dst` (a host path, or stdout for `-`) with backpressure; a failed copy leaves no file. */
async function drainTo(body: AsyncIterable<Uint8Array>, dst: string, bar: Progress): Promise<number> {
  const sink: Writable = dst === "-" ? process.stdout : createWriteStream(dst);
  let sinkError: unknown;
  sink.on("error", (error) => {
    sinkError ??= error;
  });
  let n = 0;
  try {
    for await (const c of body) {
      if (sinkError) throw sinkError;
      n += c.length;
      if (!sink.write(c)) await once(sink, "drain");
      bar.update(n);
    }
    if (dst !== "-" && !sink.closed) {
      sink.end();
      await once(sink, "close");
    }
    if (sinkError) throw sinkError;
  } catch (error) {
    if (dst !== "-") {
      sink.destroy();
      rmSync(dst, { force: true });
    }
    throw error;
  } finally {
    bar.done();
  }
  return n;
}

/** A runner file's size (`wc -c`, which stats a regular file); a typed error when it cannot be read. */
async function sizeOf(session: RemoteRunnerSession, src: string, signal?: AbortSignal): Promise<number> {
  const r = await session.runCommand(
    {
      command_id: commandId("size"),
      program: "sh",
      args: ["-c", 'test -d "$1" && { echo "$1: Is a directory" >&2; exit 1; }; wc -c < "$1"', "sh", src],
    },
    { signal },
  );
  if (r.exit_code !== 0) throw new RunnerError("not_found", `cannot read runner:${src}: ${why(r.stderr)}`);
  return Number(r.stdout.trim());
}

async function writeAll(path: string, bytes: Uint8Array): Promise<void> {
  const w = createWriteStream(path);
  w.end(bytes);
  await once(w, "close");
}
