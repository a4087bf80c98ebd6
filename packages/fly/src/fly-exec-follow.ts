import { createHash, randomBytes } from "node:crypto";
import {
  CommandNotFoundError,
  cancelledMarker,
  ProviderApiError,
  type RunnerCommandRequest,
  type RunnerCommandResult,
  RunnerError,
  timeoutMarker,
} from "@roder/runner-contract";
import type { ExecResult } from "./fly-api.js";
import { EXIT, FOLLOW, KILL, START } from "./fly-scripts.js";
import type { FlySession } from "./fly-session.js";

/**
 * What the exec-mode modules (commands, files) need of their session: its machine, its workspace, and one exec
 * call. The session owns it; `hold` is shared state (shortened by every module that meets a 408).
 */
export interface FlyExecContext {
  readonly machineId: string;
  readonly root: string;
  /** Largest part of a file moved by one exec, and of each output stream per poll (bytes). */
  readonly chunkBytes: number;
  /** The destination's `default_exec_timeout_s`: a command's limit when it gives none. */
  readonly defaultTimeoutS: number | undefined;
  /** Seconds one follower exec is held in the machine; halved when the API edge answers 408 sooner. */
  hold: number;
  /** Commands this client follows: whether each was cancelled. */
  readonly running: Map<string, { cancelled: boolean }>;
  exec: FlySession["exec"];
}

/** What one START/FOLLOW exec reports about a command (see fly-scripts.ts). */
export interface PollReport {
  exit: number | null;
  cancelled: boolean;
  outSize: number;
  errSize: number;
  elapsedMs: number | null;
  /** The command's time limit as started (ms; 0 = none): an attached follower knows it too. */
  limitMs: number;
  out: Buffer;
  err: Buffer;
}

export function parsePoll(stdout: string | undefined): PollReport {
  const [head = "", out = "", err = ""] = (stdout ?? "").split("\n");
  const [ex, c, os, es, t0, t1, lim] = head.split(" ");
  if (os === undefined || es === undefined)
    throw new RunnerError(
      "provider_api",
      `fly: unexpected answer from the command follower: ${head.slice(0, 80)}`,
    );
  const start = Number(t0);
  const end = Number(t1);
  return {
    exit: ex === "-" || ex === undefined ? null : Number(ex),
    cancelled: c === "1",
    outSize: Number(os),
    errSize: Number(es),
    elapsedMs: start > 0 && end > 0 ? (end - start) / 1e6 : null,
    limitMs: Math.round(Number(lim ?? 0) * 1000) || 0,
    out: Buffer.from(out, "base64"),
    err: Buffer.from(err, "base64"),
  };
}

/** The directory of a command in the machine (a hash of its id: any id, fixed length). */
export function commandDir(ctx: FlyExecContext, commandId: string): string {
  return `${ctx.root}/.roder/cmd/${createHash("sha256").update(commandId).digest("hex").slice(0, 32)}`;
}

/** How long one held exec waits in the machine, in tenths of a second. */
export function holdTenths(ctx: FlyExecContext): number {
  return Math.max(1, Math.round(ctx.hold * 10));
}

function execTimeoutS(ctx: FlyExecContext): number {
  return Math.ceil(ctx.hold) + 10;
}

/** The follower's output budget per stream and poll. */
export function pollBytes(ctx: FlyExecContext): string {
  return String(Math.floor(ctx.chunkBytes / 2));
}

/** The API edge gave up on a held request: hold shorter from now on. */
function holdShorter(ctx: FlyExecContext): void {
  ctx.hold = Math.max(0.5, ctx.hold / 2);
}

/**
 * Follows a command from the offsets in `seen` until it ends: each poll is one exec held up to `hold`
 * seconds in the machine (mode `done`: until the command ends; `output`: until it prints). Polls repeat with
 * no gap while the command runs (each waits in the machine), and back off after failures.
 */
export async function followCommand(
  ctx: FlyExecContext,
  dir: string,
  first: PollReport | null,
  o: {
    mode: "done" | "output";
    signal?: AbortSignal | undefined;
    commandId: string;
    onChunk?: (stream: "stdout" | "stderr", data: Buffer) => void;
    seen?: { out: number; err: number };
  },
): Promise<{ report: PollReport; out: Buffer[]; err: Buffer[] }> {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const seen = o.seen ?? { out: 0, err: 0 };
  let report = first;
  let failures = 0;
  for (;;) {
    if (report) {
      if (report.out.length) {
        out.push(report.out);
        seen.out += report.out.length;
        o.onChunk?.("stdout", report.out);
      }
      if (report.err.length) {
        err.push(report.err);
        seen.err += report.err.length;
        o.onChunk?.("stderr", report.err);
      }
      if (report.exit !== null && seen.out >= report.outSize && seen.err >= report.errSize)
        return { report, out, err };
    }
    const finished = report?.exit !== null && report !== null;
    try {
      const r = await ctx.exec(
        [
          "/bin/sh",
          "-c",
          FOLLOW,
          "roder-follow",
          dir,
          String(seen.out),
          String(seen.err),
          finished ? "0" : String(holdTenths(ctx)),
          pollBytes(ctx),
          o.mode,
        ],
        {
          timeoutS: execTimeoutS(ctx),
          signal: o.signal,
          operation: "follow command",
          idempotent: true,
          retry408: false,
        },
      );
      if ((r.exit_code ?? 0) === EXIT.missing)
        throw new CommandNotFoundError({
          providerId: "fly",
          commandId: o.commandId,
          message: `fly: command '${o.commandId}' is not known in machine ${ctx.machineId}`,
        });
      report = parsePoll(r.stdout);
      failures = 0;
    } catch (error) {
      // The API edge gave up on a held request: hold shorter from now on, and poll again.
      if (ProviderApiError.isInstance(error) && error.statusCode === 408 && failures < 5) {
        holdShorter(ctx);
        failures += 1;
        report = null;
        continue;
      }
      throw error;
    }
  }
}

/**
 * Starts the command detached in the machine (one exec that then waits up to `hold` seconds for it). A 408 or
 * a dropped connection leaves it unknown whether it started: a poll tells, and only a command that never
 * started is started again.
 */
export async function launchCommand(
  ctx: FlyExecContext,
  request: RunnerCommandRequest,
  cwd: string,
  o: { mode: "done" | "output"; waitTenths: number; signal?: AbortSignal | undefined },
): Promise<PollReport> {
  const dir = commandDir(ctx, request.command_id);
  const launchId = randomBytes(8).toString("hex");
  const limitS = request.timeout_ms
    ? (request.timeout_ms / 1000).toFixed(3)
    : String(ctx.defaultTimeoutS ?? 0);
  const argv = [
    "/bin/sh",
    "-c",
    START,
    "roder-start",
    dir,
    cwd,
    limitS,
    String(o.waitTenths),
    pollBytes(ctx),
    o.mode,
    launchId,
  ];
  // argv and env travel on stdin (base64 lines), never on a command line.
  const b64 = (v: string) => Buffer.from(v).toString("base64");
  const envBlock = [
    ...[request.program, ...request.args].map((a) => `A ${b64(a)}\n`),
    ...request.env.map(([k, v]) => `E ${k} ${b64(v)}\n`),
  ].join("");
  // Whether it started, when the answer was lost or cut short: null = it never did.
  const probe = async (): Promise<PollReport | null> => {
    const r = await ctx.exec(
      ["/bin/sh", "-c", FOLLOW, "roder-follow", dir, "0", "0", "0", "0", o.mode, launchId],
      {
        timeoutS: 30,
        signal: o.signal,
        operation: "follow command",
        idempotent: true,
      },
    );
    if ((r.exit_code ?? 0) === EXIT.missing) return null;
    return parsePoll(r.stdout);
  };
  for (let attempt = 0; ; attempt++) {
    let r: ExecResult;
    try {
      r = await ctx.exec(argv, {
        stdin: envBlock,
        timeoutS: execTimeoutS(ctx),
        signal: o.signal,
        operation: "run command",
      });
    } catch (error) {
      const unknownOutcome =
        ProviderApiError.isInstance(error) &&
        (error.statusCode === 408 || error.statusCode === undefined || error.statusCode >= 500);
      if (!unknownOutcome || attempt >= 2 || o.signal?.aborted) throw error;
      if (ProviderApiError.isInstance(error) && error.statusCode === 408) holdShorter(ctx);
      const seen = await probe();
      if (seen) return seen;
      continue;
    }
    const code = r.exit_code ?? 0;
    if (code === EXIT.running)
      throw new RunnerError("invalid_request", `command id '${request.command_id}' is already running`);
    if (code === EXIT.io)
      throw new RunnerError(
        "io_error",
        `fly: could not start the command: ${(r.stderr ?? "").trim().slice(0, 300)}`,
      );
    if (code === 0 && !r.exit_signal) {
      try {
        return parsePoll(r.stdout);
      } catch {}
    }
    // The starter itself was cut short (killed by the command, say): what the machine has tells.
    const seen = await probe();
    if (seen) return seen;
    if (attempt >= 2)
      throw new RunnerError(
        "provider_api",
        `fly: could not start the command (exit ${code}): ${(r.stderr ?? "").trim().slice(0, 300)}`,
      );
  }
}

/** The contract's result from what the machine reported. */
export function commandResult(
  request: { command_id: string; timeout_ms?: number | undefined },
  report: PollReport,
  out: Buffer[],
  err: Buffer[],
  cancelled: boolean,
): RunnerCommandResult {
  const stdout = Buffer.concat(out).toString("utf8");
  let stderr = Buffer.concat(err).toString("utf8");
  if (cancelled || report.cancelled)
    return { command_id: request.command_id, exit_code: null, stdout, stderr: stderr + cancelledMarker() };
  const limit = request.timeout_ms ?? report.limitMs;
  // timeout(1) answers 124 at the limit (137 when the KILL after it was needed); the clock in the machine says
  // whether the limit was really reached, so a program that exits 124 on its own is not taken for a timeout.
  if (
    limit > 0 &&
    (report.exit === 124 || report.exit === 137) &&
    report.elapsedMs !== null &&
    report.elapsedMs >= limit - 5
  ) {
    stderr += timeoutMarker(limit);
    return { command_id: request.command_id, exit_code: null, stdout, stderr };
  }
  // timeout(1) reports a program it could not run as 126/127, like a shell.
  return { command_id: request.command_id, exit_code: report.exit, stdout, stderr };
}

/** Signals the command's process group through an exec (`arm`: also when it has not started yet). */
export async function killCommand(
  ctx: FlyExecContext,
  commandId: string,
  sig: string,
  arm: boolean,
  signal?: AbortSignal,
): Promise<boolean> {
  const name = sig.replace(/^SIG/, "");
  if (!/^[A-Z0-9]+$/.test(name)) throw new RunnerError("invalid_request", `invalid signal '${sig}'`);
  const r = await ctx.exec(
    ["/bin/sh", "-c", KILL, "roder-kill", commandDir(ctx, commandId), arm ? "arm" : "", name],
    { timeoutS: 30, signal, operation: "cancel command" },
  );
  return (r.exit_code ?? 0) === 0;
}
