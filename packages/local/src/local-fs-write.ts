import { randomBytes } from "node:crypto";
import { constants, promises as fs } from "node:fs";
import { basename, dirname, join, relative } from "node:path";
import { CancelledError } from "@roder/runner-contract";
import { type Confinement, checkOpened, DIR_FLAGS, fdPath, PROC_FD } from "./local-fs.js";

// Writes: atomic (a temporary file beside the target, fsynced, renamed over it), and, in the workspace, through
// directory descriptors checked after opening.

/** Bytes written per `write(2)` call; the abort signal is checked between chunks. */
const WRITE_CHUNK = 4 * 1024 * 1024;

/** What a write takes: the whole contents, or chunks as they come (a stream, with bounded memory). */
export type WriteSource = Uint8Array | AsyncIterable<Uint8Array>;

/** Streamed writes gather chunks up to this before writing. */
const STREAM_BATCH = 1024 * 1024;

/** Writes all of `chunk` at `position` (a short write is continued). */
async function writeAll(handle: fs.FileHandle, chunk: Uint8Array, position: number): Promise<void> {
  for (let off = 0; off < chunk.length; ) {
    const { bytesWritten } = await handle.write(chunk, off, chunk.length - off, position + off);
    off += bytesWritten;
  }
}

/**
 * Writes `contents` to a new file at `tmp` (O_EXCL, no symlink followed), in chunks, then fsyncs it; the bytes
 * written. The abort signal is checked between chunks; a stream that throws stops the write with its error.
 */
async function writeTemp(
  tmp: string,
  contents: WriteSource,
  signal: AbortSignal | undefined,
): Promise<number> {
  const handle = await fs.open(
    tmp,
    constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY | constants.O_NOFOLLOW,
    0o644,
  );
  let at = 0;
  try {
    if (contents instanceof Uint8Array) {
      for (; at < contents.length; ) {
        if (signal?.aborted) throw new CancelledError({ operation: "writeFile" });
        const n = Math.min(WRITE_CHUNK, contents.length - at);
        await writeAll(handle, contents.subarray(at, at + n), at);
        at += n;
      }
    } else {
      // Small chunks (a socket's 64 KiB) are gathered into one write of up to 1 MiB: fewer system calls.
      const batch = Buffer.allocUnsafe(STREAM_BATCH);
      let held = 0;
      const flush = async () => {
        if (held === 0) return;
        await writeAll(handle, batch.subarray(0, held), at);
        at += held;
        held = 0;
      };
      for await (const chunk of contents) {
        if (signal?.aborted) throw new CancelledError({ operation: "writeFile" });
        if (chunk.length >= STREAM_BATCH) {
          await flush();
          await writeAll(handle, chunk, at);
          at += chunk.length;
          continue;
        }
        if (held + chunk.length > STREAM_BATCH) await flush();
        batch.set(chunk, held);
        held += chunk.length;
      }
      await flush();
    }
    if (signal?.aborted) throw new CancelledError({ operation: "writeFile" });
    await handle.sync();
    return at;
  } finally {
    await handle.close();
  }
}

/**
 * Atomic write into directory `dir` (any path that names it, `/proc/self/fd/N` included): a temp file in
 * that directory, fsync, rename over `name`. A reader sees the old or the new file; an abort before the
 * rename leaves the old file and no temp file.
 */
async function atomicWriteIn(
  dir: string,
  name: string,
  contents: WriteSource,
  signal: AbortSignal | undefined,
): Promise<number> {
  const tmp = join(dir, `.roder-tmp-${randomBytes(6).toString("hex")}`);
  try {
    const bytes = await writeTemp(tmp, contents, signal);
    if (signal?.aborted) throw new CancelledError({ operation: "writeFile" });
    await fs.rename(tmp, join(dir, name));
    return bytes;
  } catch (error) {
    await fs.rm(tmp, { force: true }).catch(() => {});
    throw error;
  }
}

/** Atomic write of a host path, creating its parents (for the provider's own files, not workspace paths). */
export async function atomicWrite(
  path: string,
  contents: WriteSource,
  signal?: AbortSignal,
): Promise<number> {
  await fs.mkdir(dirname(path), { recursive: true });
  return atomicWriteIn(dirname(path), basename(path), contents, signal);
}

/**
 * Opens the directory `hostDir` (under the workspace), creating missing components one at a time. Each
 * component is opened relative to the previous one's descriptor and its real path checked, so neither the
 * open nor a `mkdir` ever happens outside the workspace, whatever is swapped in meanwhile.
 */
async function openDirInside(c: Confinement, hostDir: string, runnerPath: string): Promise<fs.FileHandle> {
  const roots = [c.realRoot];
  try {
    const fast = await fs.open(hostDir, DIR_FLAGS);
    try {
      await checkOpened(fast, roots, c, runnerPath);
      return fast;
    } catch (error) {
      await fast.close();
      throw error;
    }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
  }
  const parts = relative(c.root, hostDir).split("/").filter(Boolean);
  let cur = await fs.open(c.realRoot, DIR_FLAGS);
  try {
    for (const part of parts) {
      let next: fs.FileHandle | undefined;
      for (let attempt = 0; !next; attempt++) {
        try {
          next = await fs.open(fdPath(cur.fd, part), DIR_FLAGS);
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== "ENOENT" || attempt >= 3) throw error;
          await fs.mkdir(fdPath(cur.fd, part)).catch((e: NodeJS.ErrnoException) => {
            if (e.code !== "EEXIST") throw e;
          });
        }
      }
      const opened = next;
      await cur.close();
      cur = opened;
      await checkOpened(cur, roots, c, runnerPath);
    }
    return cur;
  } catch (error) {
    await cur.close().catch(() => {});
    throw error;
  }
}

/**
 * `writeFile` of a workspace path already confined by `resolveRunnerPath`: the atomic write happens in a
 * directory opened and checked as a descriptor (see `openDirInside`), never through a path a concurrent
 * process could redirect.
 */
export async function confinedWrite(
  c: Confinement,
  hostPath: string,
  runnerPath: string,
  contents: WriteSource,
  signal?: AbortSignal,
): Promise<number> {
  if (!PROC_FD) return atomicWrite(hostPath, contents, signal);
  const dir = await openDirInside(c, dirname(hostPath), runnerPath);
  try {
    if (signal?.aborted) throw new CancelledError({ operation: "writeFile" });
    return await atomicWriteIn(fdPath(dir.fd), basename(hostPath), contents, signal);
  } finally {
    await dir.close();
  }
}
