import { RunnerError } from "@roder/runner-contract";
import {
  type Confinement,
  confinedOpen,
  confinedRead,
  mapFsError,
  pinForExport,
  readChunks,
} from "./local-fs.js";
import { confinedWrite, type WriteSource } from "./local-fs-write.js";
import {
  type SandboxFiles,
  sandboxCopyOut,
  sandboxOpenRead,
  sandboxRead,
  sandboxWrite,
} from "./local-sandbox-files.js";

/**
 * File work on a path of a session's own view that is not its workspace (`/tmp/x`, `/etc/hostname`, a symlink in
 * the workspace that points elsewhere): the absolute path as commands see it, already normalised.
 */
export interface ViewFiles {
  read(path: string, signal?: AbortSignal): Promise<Uint8Array>;
  /** Atomic (a temporary file beside the target, renamed over it); the bytes written. */
  write(path: string, contents: WriteSource, signal?: AbortSignal): Promise<number>;
  openRead(
    path: string,
    offset: number,
    length: number | undefined,
    signal?: AbortSignal,
  ): Promise<{ size: number; body: AsyncIterable<Uint8Array> }>;
  /** The file (or directory) to export, held so that what is read is what was checked. */
  pin(path: string, recursive: boolean): Promise<{ path: string; close: () => Promise<void> }>;
}

/** Under bubblewrap: done inside the session's sandbox by its user (see local-sandbox-files.ts). */
export function sandboxViewFiles(files: SandboxFiles): ViewFiles {
  return {
    read: (path, signal) => sandboxRead(files, path, signal),
    write: (path, contents, signal) => sandboxWrite(files, path, contents, signal),
    openRead: (path, offset, length, signal) => sandboxOpenRead(files, path, offset, length, signal),
    pin: (path, recursive) => sandboxCopyOut(files, path, recursive),
  };
}

/** The whole host as the confinement: every real path is inside it. */
const WHOLE_HOST: Confinement = { runnerRoot: "/", root: "/", realRoot: "/", readRoots: [] };

/**
 * Without isolation, on a host its operator declared to be the sandbox (`hostIsSandbox`: a Fly machine, a
 * container of its own): done on the host by the runner, as its commands would. The workspace's protections
 * that still mean something stay: writes are atomic (a temporary file created exclusively, never through a
 * symlink, fsynced, renamed) with parents made one opened directory at a time; reads never block on a FIFO
 * and take regular files only; an export reads the descriptor it opened. There is no "outside" to refuse.
 */
export function hostViewFiles(): ViewFiles {
  return {
    async read(path, signal) {
      try {
        return await confinedRead(WHOLE_HOST, path, path, signal);
      } catch (error) {
        mapFsError(error, path);
      }
    },
    async write(path, contents, signal) {
      if (path === "/") throw new RunnerError("is_a_directory", "path is a directory: /");
      try {
        return await confinedWrite(WHOLE_HOST, path, path, contents, signal);
      } catch (error) {
        mapFsError(error, path);
      }
    },
    async openRead(path, offset, length, signal) {
      try {
        const { handle, size } = await confinedOpen(WHOLE_HOST, path, path);
        const span = Math.max(0, Math.min(size - offset, length ?? Number.POSITIVE_INFINITY));
        return { size, body: readChunks(handle, offset, span, signal) };
      } catch (error) {
        mapFsError(error, path);
      }
    },
    async pin(path) {
      try {
        return await pinForExport(WHOLE_HOST, path, path);
      } catch (error) {
        mapFsError(error, path);
      }
    },
  };
}
