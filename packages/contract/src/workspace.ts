import { PathOutsideWorkspaceError } from "./errors/path-outside-workspace-error.js";
import { RunnerError } from "./errors/runner-error.js";
import type { RemoteRunnerSession, RunnerCallOptions } from "./runner-interfaces.js";
import type { RunnerCommandRequestInput, RunnerCommandResult } from "./schemas.js";

/** Normalises an absolute POSIX path: collapses `//`, `.` and `..` (never above `/`). */
/**
 * A path of an isolated sandbox's own view (what its file API addresses on E2B, Fly, local under bwrap): absolute
 * paths as the sandbox sees them, relative ones against `root` (the workspace), normalised (`..` stays inside the
 * sandbox's tree), no trailing slash. Empty paths and NUL bytes are refused before anything runs.
 */
export function sandboxViewPath(path: string, root: string): string {
  if (typeof path !== "string" || path === "")
    throw new RunnerError("invalid_request", "a path must be a non-empty string");
  if (path.includes("\u0000")) throw new RunnerError("invalid_request", "paths cannot contain NUL bytes");
  const abs = path.startsWith("/") ? path : `${root}/${path}`;
  return normalizePosix(abs).replace(/(.)\/+$/, "$1");
}

export function normalizePosix(path: string): string {
  const parts: string[] = [];
  for (const seg of path.split("/")) {
    if (seg === "" || seg === ".") continue;
    if (seg === "..") parts.pop();
    else parts.push(seg);
  }
  return `/${parts.join("/")}`;
}

/** True when `path` is `root` or below it (both normalised absolute paths). */
export function isWithin(path: string, root: string): boolean {
  return root === "/" || path === root || path.startsWith(`${root}/`);
}

/**
 * Confines a runner path (pure POSIX, no I/O). A relative path resolves against `root`. NUL bytes, paths
 * that leave the root through `..`, and absolute paths outside the root (for reads: outside the root and every
 * read root) throw `PathOutsideWorkspaceError`. Returns the normalised absolute path. Symlinks are the
 * runner's to check (it sees the file system).
 */
export function confinePath(
  path: string,
  opts: { root: string; readRoots?: readonly string[]; access: "read" | "write" | "cwd" },
): string {
  const root = normalizePosix(opts.root);
  const refuse = (reason: string): never => {
    throw new PathOutsideWorkspaceError({ path, root, reason });
  };
  if (typeof path !== "string") refuse("not a string");
  if (path.includes("\u0000")) refuse("contains a NUL byte");
  if (path === "") refuse("empty path");
  const absolute = path.startsWith("/");
  // `..` that climbs above the root is refused even when it comes back down (`../root/x`): it names a
  // path outside before normalisation, which a runner following symlinks could resolve differently.
  const base = absolute ? "" : root;
  const depth = { n: absolute ? 0 : root.split("/").filter(Boolean).length };
  const rootDepth = root.split("/").filter(Boolean).length;
  for (const seg of path.split("/")) {
    if (seg === "" || seg === ".") continue;
    if (seg === "..") {
      depth.n -= 1;
      if (!absolute && depth.n < rootDepth) refuse("'..' leaves the workspace");
    } else depth.n += 1;
  }
  const resolved = normalizePosix(`${base}/${path}`);
  if (isWithin(resolved, root)) return resolved;
  if (opts.access === "read") {
    for (const r of opts.readRoots ?? []) if (isWithin(resolved, normalizePosix(r))) return resolved;
    refuse("outside the workspace and its read roots");
  }
  return refuse(
    opts.access === "cwd"
      ? "the working directory must stay in the workspace"
      : "writes must stay in the workspace",
  );
}

/**
 * Remote workspace handle (Rust's `RemoteWorkspace`): routes reads, writes and commands through a session with
 * paths confined to `root` (reads may also resolve under `readRoots`).
 */
export class RemoteWorkspace {
  readonly session: RemoteRunnerSession;
  readonly root: string;
  readonly readRoots: readonly string[];

  constructor(args: { session: RemoteRunnerSession; root: string; readRoots?: readonly string[] }) {
    if (!args.root.startsWith("/"))
      throw new PathOutsideWorkspaceError({
        path: args.root,
        root: args.root,
        reason: "the workspace root must be absolute",
      });
    this.session = args.session;
    this.root = normalizePosix(args.root);
    this.readRoots = (args.readRoots ?? []).map(normalizePosix);
  }

  /** The absolute runner path `path` resolves to, or a typed error. */
  resolve(path: string, access: "read" | "write" | "cwd" = "read"): string {
    return confinePath(path, { root: this.root, readRoots: this.readRoots, access });
  }

  async readFile(path: string, options?: RunnerCallOptions): Promise<Uint8Array> {
    const result = await this.session.readFile({ path: this.resolve(path, "read") }, options);
    return result.contents;
  }

  async writeFile(path: string, contents: Uint8Array, options?: RunnerCallOptions): Promise<void> {
    await this.session.writeFile({ path: this.resolve(path, "write"), contents }, options);
  }

  async runCommand(
    request: RunnerCommandRequestInput,
    options?: RunnerCallOptions,
  ): Promise<RunnerCommandResult> {
    const cwd = this.resolve(request.cwd ?? this.root, "cwd");
    return this.session.runCommand({ ...request, cwd }, options);
  }
}
