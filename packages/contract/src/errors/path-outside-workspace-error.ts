import { hasCode, RunnerError, type RunnerErrorOptions } from "./runner-error.js";

/** A path that leaves the workspace (`..`, an absolute path outside, a NUL byte, a symlink that escapes). */
export class PathOutsideWorkspaceError extends RunnerError {
  readonly path: string;
  readonly root: string;
  readonly reason: string;

  constructor(args: { path: string; root: string; reason: string }, options?: RunnerErrorOptions) {
    super(
      "path_outside_workspace",
      `path ${JSON.stringify(args.path)} is refused: ${args.reason} (workspace root ${args.root})`,
      options,
    );
    this.name = "PathOutsideWorkspaceError";
    this.path = args.path;
    this.root = args.root;
    this.reason = args.reason;
  }

  static override isInstance(error: unknown): error is PathOutsideWorkspaceError {
    return hasCode(error, "path_outside_workspace");
  }
}
