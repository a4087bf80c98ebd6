import { randomBytes } from "node:crypto";
import { constants, existsSync, promises as fs } from "node:fs";
import { basename, dirname, join, relative } from "node:path";
import {
  CancelledError,
  confinePath,
  isWithin,
  normalizePosix,
  PathOutsideWorkspaceError,
  RunnerError,
} from "@roder/runner-contract";

/** Real path of `path`, or of its nearest existing ancestor joined with the rest. */
export async function realpathLoose(path: string, depth = 0): Promise<string> {
  let cur = path;
  const rest: string[] = [];
  for (;;) {
    try {
      const real = await fs.realpath(cur);
      return rest.length ? join(real, ...rest.reverse()) : real;
    } catch (error) {
      if (
        (error as NodeJS.ErrnoException).code !== "ENOENT" &&
        (error as NodeJS.ErrnoException).code !== "ENOTDIR"
      )
        throw error;
      // A dangling symlink leads where its target says, not where the link is (`link -> /tmp/x` is in /tmp).
      const target = await fs.readlink(cur).catch(() => null);
      if (target !== null && depth < 40) {
        const next = target.startsWith("/") ? target : join(dirname(cur), target);
        const real = await realpathLoose(next, depth + 1);
        return rest.length ? join(real, ...rest.reverse()) : real;
      }
      const parent = dirname(cur);
      if (parent === cur) return path;
      rest.push(cur.slice(parent.length + (parent === "/" ? 0 : 1)));
      cur = parent;
    }
  }
}

export interface Confinement {
  /** The workspace as commands see it (the host path, or `workspace_path` under bwrap). */
  runnerRoot: string;
  /** The workspace on the host. */
  root: string;
  realRoot: string;
  readRoots: readonly string[];
}

/** Maps a confined runner path to the host path it names. */
export function toHostPath(c: Confinement, runnerPath: string): string {
  return isWithin(runnerPath, c.runnerRoot) ? c.root + runnerPath.slice(c.runnerRoot.length) : runnerPath;
}

/**
 * Contract confinement of a runner path, then the symlink check on the host: the real path must stay under
 * the workspace (or a read root). Returns the host path.
 */
export async function resolveRunnerPath(
  c: Confinement,
  path: string,
  access: "read" | "write" | "cwd",
): Promise<string> {
  // A command may also run in a read root (commands see those directories, read-only under bwrap).
  const inReadRoot =
    access === "cwd" && c.readRoots.some((r) => isWithin(normalizePosix(path), normalizePosix(r)));
  const lexical = inReadRoot ? "read" : access;
  const p = toHostPath(c, confinePath(path, { root: c.runnerRoot, readRoots: c.readRoots, access: lexical }));
  const real = await realpathLoose(p);
  const allowed = [
    c.realRoot,
    ...(lexical === "read" ? await Promise.all(c.readRoots.map((r) => realpathLoose(r))) : []),
  ];
  if (!allowed.some((r) => isWithin(real, r))) {
    throw new PathOutsideWorkspaceError({
      path,
      root: c.root,
      reason: "a symbolic link leads outside the workspace",
    });
  }
  return p;
}

export function mapFsError(error: unknown, path: string): never {
  if (RunnerError.isInstance(error)) throw error;
  const code = (error as NodeJS.ErrnoException).code;
  if (code === "ENOENT") throw new RunnerError("not_found", `no such file: ${path}`, { cause: error });
  if (code === "EROFS" || code === "EACCES" || code === "EPERM")
    throw new RunnerError("read_only", `path is read-only: ${path}`, { cause: error });
  if (code === "EISDIR")
    throw new RunnerError("is_a_directory", `path is a directory: ${path}`, { cause: error });
  throw new RunnerError("io_error", `file operation failed on ${path}: ${(error as Error).message}`, {
    cause: error,
  });
}

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
 * Whether `/proc/self/fd/N/<name>` names entries relative to an open directory (Linux). Everything the
 * confined I/O below does then goes through file descriptors whose real path was checked after opening,
 * so swapping a directory for a symlink between the check and the use cannot redirect it.
 */
const PROC_FD = process.platform === "linux" && existsSync("/proc/self/fd");
const fdPath = (fd: number, name?: string) => `/proc/self/fd/${fd}${name === undefined ? "" : `/${name}`}`;

async function allowedRoots(c: Confinement, access: "read" | "write"): Promise<string[]> {
  return [
    c.realRoot,
    ...(access === "read" ? await Promise.all(c.readRoots.map((r) => realpathLoose(r))) : []),
  ];
}

/** The real path of what `handle` opened must be inside `roots`; throws otherwise (closing nothing). */
async function checkOpened(
  handle: fs.FileHandle,
  roots: readonly string[],
  c: Confinement,
  runnerPath: string,
): Promise<void> {
  const real = await fs.readlink(fdPath(handle.fd));
  if (roots.some((r) => isWithin(real, r))) return;
  if ((await handle.stat()).nlink === 0) {
    throw new RunnerError("not_found", `no such file: ${runnerPath} (removed while it was opened)`);
  }
  throw new PathOutsideWorkspaceError({
    path: runnerPath,
    root: c.root,
    reason: "a symbolic link leads outside the workspace",
  });
}

const DIR_FLAGS = constants.O_RDONLY | constants.O_DIRECTORY;

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

/**
 * `readFile` of a path already confined by `resolveRunnerPath`: opens it (without blocking on a FIFO),
 * then checks the real path of the open descriptor before reading a byte, so a symlink swapped in after the
 * check is refused. Only regular files are read.
 */
export async function confinedRead(
  c: Confinement,
  hostPath: string,
  runnerPath: string,
  signal?: AbortSignal,
): Promise<Uint8Array> {
  const { handle } = await confinedOpen(c, hostPath, runnerPath);
  try {
    const buf = await handle.readFile(signal ? { signal } : {});
    return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  } catch (error) {
    if ((error as Error).name === "AbortError")
      throw new CancelledError({ operation: "readFile" }, { cause: error });
    throw error;
  } finally {
    await handle.close();
  }
}

/**
 * Opens a confined path for reading as `confinedRead` does (no FIFO blocks, the descriptor's real path checked,
 * regular files only); the open handle and the file's size. The caller closes the handle.
 */
export async function confinedOpen(
  c: Confinement,
  hostPath: string,
  runnerPath: string,
): Promise<{ handle: fs.FileHandle; size: number }> {
  const handle = await fs.open(hostPath, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    if (PROC_FD) await checkOpened(handle, await allowedRoots(c, "read"), c, runnerPath);
    const st = await handle.stat();
    if (st.isDirectory()) throw new RunnerError("is_a_directory", `path is a directory: ${runnerPath}`);
    if (!st.isFile()) throw new RunnerError("not_a_regular_file", `not a regular file: ${runnerPath}`);
    return { handle, size: st.size };
  } catch (error) {
    await handle.close();
    throw error;
  }
}

/** Bytes per read of a streamed file. */
const READ_CHUNK = 1024 * 1024;

/**
 * The bytes `[offset, offset + length)` of an open file as chunks read on demand (one chunk in memory at a
 * time); the handle is closed when the reader finishes, stops early, or the signal aborts.
 */
export async function* readChunks(
  handle: fs.FileHandle,
  offset: number,
  length: number,
  signal?: AbortSignal,
): AsyncGenerator<Uint8Array> {
  try {
    for (let at = offset, left = length; left > 0; ) {
      if (signal?.aborted) throw new CancelledError({ operation: "readFileStream" });
      const buf = Buffer.allocUnsafe(Math.min(READ_CHUNK, left));
      const { bytesRead } = await handle.read(buf, 0, buf.length, at);
      if (bytesRead === 0) return;
      at += bytesRead;
      left -= bytesRead;
      yield new Uint8Array(buf.buffer, buf.byteOffset, bytesRead);
    }
  } finally {
    await handle.close();
  }
}

/**
 * The file or directory to export, pinned: it is opened and its descriptor's real path checked (as
 * `confinedRead` does), and the export reads `/proc/<pid>/fd/<n>` — what was opened, so a symlink swapped into
 * the path after the check (a command under bwrap can make one that points at a host file) changes nothing.
 * A directory is archived from its descriptor (`tar -C /proc/<pid>/fd/<n> .`; tar stores symlinks inside it as
 * links, it does not follow them). Without /proc the path itself is used.
 */
export async function pinForExport(
  c: Confinement,
  hostPath: string,
  runnerPath: string,
): Promise<{ path: string; close: () => Promise<void> }> {
  const st = await fs.stat(hostPath);
  if (!PROC_FD || !(st.isFile() || st.isDirectory())) return { path: hostPath, close: async () => {} };
  const handle = await fs.open(
    hostPath,
    st.isDirectory() ? DIR_FLAGS : constants.O_RDONLY | constants.O_NONBLOCK,
  );
  try {
    await checkOpened(handle, await allowedRoots(c, "read"), c, runnerPath);
    const opened = await handle.stat();
    if (opened.isDirectory() !== st.isDirectory() || !(opened.isFile() || opened.isDirectory()))
      throw new RunnerError("io_error", `${runnerPath} changed while it was opened`);
  } catch (error) {
    await handle.close();
    throw error;
  }
  return { path: `/proc/${process.pid}/fd/${handle.fd}`, close: () => handle.close() };
}
