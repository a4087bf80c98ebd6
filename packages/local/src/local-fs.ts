import { constants, existsSync, promises as fs } from "node:fs";
import { dirname, join } from "node:path";
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

/**
 * Whether `/proc/self/fd/N/<name>` names entries relative to an open directory (Linux). Everything the
 * confined I/O below does then goes through file descriptors whose real path was checked after opening,
 * so swapping a directory for a symlink between the check and the use cannot redirect it.
 */
export const PROC_FD = process.platform === "linux" && existsSync("/proc/self/fd");
export const fdPath = (fd: number, name?: string) =>
  `/proc/self/fd/${fd}${name === undefined ? "" : `/${name}`}`;

async function allowedRoots(c: Confinement, access: "read" | "write"): Promise<string[]> {
  return [
    c.realRoot,
    ...(access === "read" ? await Promise.all(c.readRoots.map((r) => realpathLoose(r))) : []),
  ];
}

/** The real path of what `handle` opened must be inside `roots`; throws otherwise (closing nothing). */
export async function checkOpened(
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

export const DIR_FLAGS = constants.O_RDONLY | constants.O_DIRECTORY;

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
