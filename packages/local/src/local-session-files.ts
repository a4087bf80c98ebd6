import { basename, posix } from "node:path";
import {
  checkRange,
  isWithin,
  PathOutsideWorkspaceError,
  parseArtifactExportInput,
  parseFileWriteInput,
  type RunnerArtifactExportRequestInput,
  type RunnerArtifactExportResult,
  type RunnerCallOptions,
  RunnerError,
  type RunnerExportOptions,
  type RunnerFileReadRequest,
  type RunnerFileReadResult,
  type RunnerFileStream,
  type RunnerFileStreamRequest,
  type RunnerFileWriteInput,
  sandboxViewPath,
} from "@roder/runner-contract";
import { exportLocalArtifact } from "./local-artifacts.js";
import {
  confinedOpen,
  confinedRead,
  mapFsError,
  pinForExport,
  readChunks,
  resolveRunnerPath,
} from "./local-fs.js";
import { confinedWrite, type WriteSource } from "./local-fs-write.js";
import { checkAborted, runnerRootOf, type SessionContext, sandboxScopeOf } from "./local-session-info.js";
import { hostViewFiles, sandboxViewFiles, type ViewFiles } from "./local-view-files.js";

// A session's file API: workspace paths on the host (confined, through checked descriptors), and, in the
// sandbox's scope, every other path in the sandbox's own view.

/**
 * In the sandbox's scope, a path outside the workspace (and the read roots), or one whose symlinks lead out of
 * it, is served from the sandbox's own view (`viewFiles`). Null: serve it on the host, confined to the
 * workspace (the fast path, and the only one in the workspace's scope).
 */
export function outsidePath(ctx: SessionContext, path: string): string | null {
  if (!sandboxScopeOf(ctx.info, ctx.runtime)) return null;
  const runnerRoot = runnerRootOf(ctx.info);
  const abs = sandboxViewPath(path, runnerRoot);
  if (isWithin(abs, runnerRoot) || ctx.info.config.read_roots.some((r) => isWithin(abs, r))) return null;
  return abs;
}

/** Runs `inSandbox` for an isolated session when the host path refuses `path` as leading outside. */
async function hostOrSandbox<T>(
  ctx: SessionContext,
  path: string,
  onHost: () => Promise<T>,
  inSandbox: (sandboxPath: string) => Promise<T>,
): Promise<T> {
  const outside = outsidePath(ctx, path);
  if (outside) return inSandbox(outside);
  try {
    return await onHost();
  } catch (error) {
    if (sandboxScopeOf(ctx.info, ctx.runtime) && PathOutsideWorkspaceError.isInstance(error))
      return inSandbox(sandboxViewPath(path, runnerRootOf(ctx.info)));
    throw error;
  }
}

/** The file work of the sandbox's own view: inside the bwrap sandbox, or on a host that is the sandbox. */
async function viewFiles(ctx: SessionContext): Promise<ViewFiles> {
  if (ctx.info.config.isolation !== "bwrap") return hostViewFiles();
  const record = await ctx.liveSandbox();
  if (record?.kind !== "bwrap") throw new RunnerError("sandbox_failed", "the session has no sandbox");
  return sandboxViewFiles({
    tools: { setpriv: ctx.runtime.setpriv!, nsenter: ctx.runtime.nsenter! },
    record,
    home: runnerRootOf(ctx.info),
  });
}

/** A write of a workspace path on the host: never over the workspace root itself; the bytes written. */
async function writeOnHost(
  ctx: SessionContext,
  runnerPath: string,
  contents: WriteSource,
  signal: AbortSignal | undefined,
): Promise<number> {
  const path = await resolveRunnerPath(ctx.confinement, runnerPath, "write");
  if (path === ctx.info.workspaceRoot)
    throw new RunnerError("is_a_directory", `cannot write over the workspace root: ${runnerPath}`);
  try {
    return await confinedWrite(ctx.confinement, path, runnerPath, contents, signal);
  } catch (error) {
    mapFsError(error, runnerPath);
  }
}

export async function readSessionFile(
  ctx: SessionContext,
  request: RunnerFileReadRequest,
  options: RunnerCallOptions | undefined,
): Promise<RunnerFileReadResult> {
  checkAborted(options?.signal, "readFile");
  const contents = await hostOrSandbox(
    ctx,
    request.path,
    async () => {
      const path = await resolveRunnerPath(ctx.confinement, request.path, "read");
      try {
        return await confinedRead(ctx.confinement, path, request.path, options?.signal);
      } catch (error) {
        mapFsError(error, request.path);
      }
    },
    async (p) => (await viewFiles(ctx)).read(p, options?.signal),
  );
  return { path: request.path, contents };
}

export async function writeSessionFile(
  ctx: SessionContext,
  input: RunnerFileWriteInput,
  options: RunnerCallOptions | undefined,
): Promise<void> {
  const request = parseFileWriteInput(input);
  checkAborted(options?.signal, "writeFile");
  await hostOrSandbox(
    ctx,
    request.path,
    () => writeOnHost(ctx, request.path, request.contents, options?.signal),
    async (p) => (await viewFiles(ctx)).write(p, request.contents, options?.signal),
  );
}

export async function readSessionFileStream(
  ctx: SessionContext,
  request: RunnerFileStreamRequest,
  options: RunnerCallOptions | undefined,
): Promise<RunnerFileStream> {
  checkRange(request);
  checkAborted(options?.signal, "readFileStream");
  const offset = request.offset ?? 0;
  const span = (size: number) =>
    Math.max(0, Math.min(size - offset, request.length ?? Number.POSITIVE_INFINITY));
  return hostOrSandbox(
    ctx,
    request.path,
    async () => {
      const path = await resolveRunnerPath(ctx.confinement, request.path, "read");
      try {
        const { handle, size } = await confinedOpen(ctx.confinement, path, request.path);
        const length = span(size);
        return {
          path: request.path,
          size,
          offset,
          length,
          body: readChunks(handle, offset, length, options?.signal),
        };
      } catch (error) {
        mapFsError(error, request.path);
      }
    },
    async (p) => {
      const { size, body } = await (await viewFiles(ctx)).openRead(
        p,
        offset,
        request.length,
        options?.signal,
      );
      return { path: request.path, size, offset, length: span(size), body };
    },
  );
}

export async function writeSessionFileStream(
  ctx: SessionContext,
  request: { path: string },
  body: AsyncIterable<Uint8Array>,
  options: RunnerCallOptions | undefined,
): Promise<{ bytes: number }> {
  const { path: runnerPath } = parseFileWriteInput({ path: request.path, contents: new Uint8Array() });
  checkAborted(options?.signal, "writeFileStream");
  const bytes = await hostOrSandbox(
    ctx,
    runnerPath,
    () => writeOnHost(ctx, runnerPath, body, options?.signal),
    async (p) => (await viewFiles(ctx)).write(p, body, options?.signal),
  );
  return { bytes };
}

export async function exportSessionArtifact(
  ctx: SessionContext,
  input: RunnerArtifactExportRequestInput,
  options: RunnerExportOptions | undefined,
): Promise<RunnerArtifactExportResult> {
  const request = parseArtifactExportInput(input);
  const common = {
    request,
    config: ctx.info.config.artifacts,
    env: ctx.runtime.env,
    ...(options?.signal ? { signal: options.signal } : {}),
    ...(options?.onProgress ? { onProgress: options.onProgress } : {}),
  };
  return hostOrSandbox(
    ctx,
    request.path,
    async () => {
      const hostPath = await resolveRunnerPath(ctx.confinement, request.path, "read");
      return exportLocalArtifact({
        ...common,
        pin: () =>
          pinForExport(ctx.confinement, hostPath, request.path).catch((error) =>
            mapFsError(error, request.path),
          ),
        name: basename(hostPath),
      });
    },
    async (p) =>
      exportLocalArtifact({
        ...common,
        pin: async () => (await viewFiles(ctx)).pin(p, request.recursive ?? false),
        name: posix.basename(p) || "root",
      }),
  );
}
