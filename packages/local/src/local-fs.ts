import { randomBytes } from "node:crypto";
import { constants, promises as fs } from "node:fs";
import { dirname, join } from "node:path";
import { confinePath, isWithin, PathOutsideWorkspaceError, RunnerError } from "@roder/runner-contract";

/** Real path of `path`, or of its nearest existing ancestor joined with the rest. */
export async function realpathLoose(path: string): Promise<string> {
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
  const p = toHostPath(c, confinePath(path, { root: c.runnerRoot, readRoots: c.readRoots, access }));
  const real = await realpathLoose(p);
  const allowed = [
    c.realRoot,
    ...(access === "read" ? await Promise.all(c.readRoots.map((r) => realpathLoose(r))) : []),
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

/** Atomic write: a temp file in the same directory, fsync, rename. A reader sees the old or the new file. */
export async function atomicWrite(path: string, contents: Uint8Array): Promise<void> {
  await fs.mkdir(dirname(path), { recursive: true });
  const tmp = join(dirname(path), `.roder-tmp-${randomBytes(6).toString("hex")}`);
  let handle: fs.FileHandle | undefined;
  try {
    handle = await fs.open(tmp, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY, 0o644);
    await handle.writeFile(contents);
    await handle.sync();
    await handle.close();
    handle = undefined;
    await fs.rename(tmp, path);
  } catch (error) {
    await handle?.close().catch(() => {});
    await fs.rm(tmp, { force: true }).catch(() => {});
    throw error;
  }
}
