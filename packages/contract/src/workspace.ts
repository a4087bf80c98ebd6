// STUB: signatures fixed; the implementation is being written.
import type { RemoteRunnerSession } from "./runner-interfaces.js";

/**
 * Pure POSIX path confinement (no I/O). `root` and `readRoots` are absolute runner paths.
 * A relative path resolves against `root`. Throws `PathOutsideWorkspaceError` for NUL bytes, paths that
 * leave the root (after normalising `.`/`..`), absolute paths outside; returns the normalised absolute path.
 */
export declare function confinePath(
  path: string,
  opts: { root: string; readRoots?: readonly string[]; access: "read" | "write" | "cwd" },
): string;

/** Remote workspace handle: routes reads, writes and commands through a session with paths confined. */
export declare class RemoteWorkspace {
  readonly session: RemoteRunnerSession;
  readonly root: string;
  readonly readRoots: readonly string[];
  constructor(args: { session: RemoteRunnerSession; root: string; readRoots?: readonly string[] });
}
