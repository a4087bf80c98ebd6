import { randomBytes } from "node:crypto";
import {
  PathOutsideWorkspaceError,
  type RunnerCallOptions,
  RunnerError,
  type RunnerFileReadRequest,
  type RunnerFileReadResult,
  type RunnerFileWriteRequest,
  sandboxViewPath,
} from "@roder/runner-contract";
import type { ExecResult } from "./fly-api.js";
import type { FlyExecContext } from "./fly-exec-follow.js";
import { DISCARD, EXIT, READ, WRITE } from "./fly-scripts.js";

/** Reads in parts of at most `chunkBytes`, one exec each (the first also gives the size). */
export async function readExecFile(
  ctx: FlyExecContext,
  request: RunnerFileReadRequest,
  options?: RunnerCallOptions,
): Promise<RunnerFileReadResult> {
  const p = sandboxViewPath(request.path, ctx.root);
  const parts: Buffer[] = [];
  let offset = 0;
  for (;;) {
    const r = await ctx.exec(
      ["/bin/sh", "-c", READ, "roder-read", p, String(offset), String(ctx.chunkBytes), "/"],
      { timeoutS: 120, signal: options?.signal, operation: "read file", idempotent: true },
    );
    fileError(ctx, r, request.path);
    const nl = (r.stdout ?? "").indexOf("\n");
    const size = Number((r.stdout ?? "").slice(0, nl));
    const part = Buffer.from((r.stdout ?? "").slice(nl + 1), "base64");
    parts.push(part);
    offset += part.length;
    if (offset >= size || part.length === 0) break;
  }
  const all = Buffer.concat(parts);
  return { path: request.path, contents: new Uint8Array(all.buffer, all.byteOffset, all.byteLength) };
}

/** Writes in parts of at most `chunkBytes` to a temp file beside the target, renamed over it at the end. */
export async function writeExecFile(
  ctx: FlyExecContext,
  request: RunnerFileWriteRequest,
  options?: RunnerCallOptions,
): Promise<void> {
  const p = sandboxViewPath(request.path, ctx.root);
  if (p === ctx.root || p === "/")
    throw new PathOutsideWorkspaceError({
      path: request.path,
      root: ctx.root,
      reason: "cannot write over the workspace root",
    });
  const bytes = Buffer.from(
    request.contents.buffer,
    request.contents.byteOffset,
    request.contents.byteLength,
  );
  const tmp = randomBytes(6).toString("hex");
  const count = Math.max(1, Math.ceil(bytes.length / ctx.chunkBytes));
  try {
    for (let i = 0; i < count; i++) {
      const part = count === 1 ? "only" : i === 0 ? "first" : i === count - 1 ? "last" : "next";
      const r = await ctx.exec(["/bin/sh", "-c", WRITE, "roder-write", p, tmp, part, "/"], {
        stdin: bytes.subarray(i * ctx.chunkBytes, (i + 1) * ctx.chunkBytes).toString("base64"),
        timeoutS: 120,
        signal: options?.signal,
        operation: "write file",
        // The first part truncates: sending it twice does no harm. Later parts append.
        idempotent: part === "first" || part === "only",
      });
      fileError(ctx, r, request.path);
    }
  } catch (error) {
    if (count > 1)
      await ctx
        .exec(["/bin/sh", "-c", DISCARD, "roder-discard", p, tmp], {
          timeoutS: 30,
          operation: "discard partial write",
        })
        .catch(() => {});
    throw error;
  }
}

/** The typed error of a file script's exit status (see EXIT in fly-scripts.ts). */
function fileError(ctx: FlyExecContext, r: ExecResult, path: string): void {
  const code = r.exit_code ?? 0;
  if (code === 0) return;
  if (code === EXIT.outside)
    throw new PathOutsideWorkspaceError({
      path,
      root: ctx.root,
      reason: "its real path (symbolic links resolved) is outside the workspace",
    });
  if (code === EXIT.missing) throw new RunnerError("not_found", `no such file: ${path}`);
  if (code === EXIT.isDir) throw new RunnerError("is_a_directory", `path is a directory: ${path}`);
  if (/read-only/i.test(r.stderr ?? "")) throw new RunnerError("read_only", `path is read-only: ${path}`);
  throw new RunnerError(
    "io_error",
    `file operation on ${path} failed (exit ${code}): ${(r.stderr ?? "").trim().slice(0, 300)}`,
  );
}
