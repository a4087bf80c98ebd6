import { randomBytes } from "node:crypto";
import { posix } from "node:path";
import {
  parseArtifactExportInput,
  type RemoteRunnerSession,
  type RunnerArtifactExportRequestInput,
  type RunnerArtifactExportResult,
  type RunnerCallOptions,
  RunnerError,
  type RunnerExportOptions,
  type RunnerFileReadRequest,
  type RunnerFileReadResult,
  type RunnerFileWriteRequest,
  sandboxViewPath,
  UnsupportedCapabilityError,
} from "@roder/runner-contract";
import { exportArtifact, parseArtifactTarget, sessionArtifactSource } from "@roder/runner-storage";
import type { SdkSandbox } from "./e2b-command-follow.js";

/** What the file operations need of their session. */
export interface E2bFilesContext {
  readonly sandbox: SdkSandbox;
  readonly root: string;
  /** Moves the sandbox's timeout before it is used (see E2bKeepAlive.touch). */
  touch(): Promise<void>;
  /** The typed error of a failed file operation (see mapE2bFileError). */
  fileError(error: unknown, operation: string, path: string): unknown;
}

/** Reads the whole file through envd (any path of the sandbox's view; relative: the workspace's). */
export async function readE2bFile(
  ctx: E2bFilesContext,
  request: RunnerFileReadRequest,
  options?: RunnerCallOptions,
): Promise<RunnerFileReadResult> {
  const p = sandboxViewPath(request.path, ctx.root);
  await ctx.touch();
  try {
    const bytes = await ctx.sandbox.files.read(p, {
      format: "bytes",
      ...(options?.signal ? { signal: options.signal } : {}),
    });
    return { path: request.path, contents: bytes };
  } catch (error) {
    throw ctx.fileError(error, "read file", request.path);
  }
}

/** Writes to a temp file of the target's directory, then renames it over the target (see E2bSession.writeFile). */
export async function writeE2bFile(
  ctx: E2bFilesContext,
  request: RunnerFileWriteRequest,
  options?: RunnerCallOptions,
): Promise<void> {
  const p = sandboxViewPath(request.path, ctx.root);
  if (p === ctx.root || p === "/")
    throw new RunnerError(
      "is_a_directory",
      `write file: cannot write over ${p === "/" ? "the sandbox's root" : "the workspace root"}: ${request.path}`,
    );
  await ctx.touch();
  const tmp = `${posix.dirname(p)}/.roder-tmp-${randomBytes(6).toString("hex")}`;
  try {
    const c = request.contents;
    await ctx.sandbox.files.write(
      tmp,
      c.buffer.slice(c.byteOffset, c.byteOffset + c.byteLength) as ArrayBuffer,
      {
        useOctetStream: true,
        ...(options?.signal ? { signal: options.signal } : {}),
      },
    );
    await ctx.sandbox.files.rename(tmp, p);
  } catch (error) {
    await ctx.sandbox.files.remove(tmp).catch(() => {});
    throw ctx.fileError(error, "write file", request.path);
  }
}

/** The storage package's export, run by the session's own commands; envd streams a file's bytes to the host. */
export async function exportE2bArtifact(
  ctx: E2bFilesContext,
  session: RemoteRunnerSession,
  info: { artifacts: unknown; env: Record<string, string | undefined> },
  input: RunnerArtifactExportRequestInput,
  options?: RunnerExportOptions,
): Promise<RunnerArtifactExportResult> {
  const request = parseArtifactExportInput(input);
  await ctx.touch();
  if (info.artifacts === undefined)
    throw new UnsupportedCapabilityError({
      providerId: "e2b",
      capability: "artifact_export",
      message: "e2b: this destination has no artifacts bucket (config.artifacts)",
    });
  const target = parseArtifactTarget("e2b", info.artifacts);
  const path = sandboxViewPath(request.path, ctx.root);
  return exportArtifact({
    providerId: "e2b",
    target,
    env: info.env,
    source: sessionArtifactSource(session, {
      // Archives of directories are made in the sandbox's /tmp, not in the workspace.
      tmpDir: "/tmp",
      // envd streams a file's bytes: the stream path never holds the whole artifact.
      openStream: async (file) => {
        const { Readable } = await import("node:stream");
        const web = await ctx.sandbox.files.read(file, { format: "stream" });
        return Readable.fromWeb(web as import("node:stream/web").ReadableStream);
      },
    }),
    request,
    path,
    ...(options?.signal ? { signal: options.signal } : {}),
    ...(options?.onProgress ? { onProgress: options.onProgress } : {}),
  });
}
