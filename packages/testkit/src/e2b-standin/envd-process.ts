import type { IncomingMessage, ServerResponse } from "node:http";
import { OutputLog } from "@roder/runner-contract";
import { END_STREAM, envelope, readFirstEnvelope } from "./connect-envelope.js";
import type { E2bContext } from "./e2b-context.js";
import { ApiError, readBody, userOf } from "./e2b-http.js";
import type { E2bStandInSandbox, StandInProcess } from "./e2b-standin-types.js";
import { EnvdFsError, fsOp } from "./envd-fs.js";
import { resolvePath } from "./envd-paths.js";

/**
 * envd's process service (Connect): `Start` and `Connect` stream a process's events (start, output, end) in
 * `application/connect+json` envelopes; the unary RPCs list processes, signal them, and give them input (a stdin
 * pipe or a terminal: SendInput, CloseStdin, Update's resize). A process's output log outlives any client stream.
 */
export function createEnvdProcess(ctx: E2bContext) {
  const { sandboxes } = ctx;

  const pidOf = (sel: unknown): number => {
    const p = sel as { pid?: number; selector?: { pid?: number } } | undefined;
    return Number(p?.pid ?? p?.selector?.pid);
  };

  function processFor(s: E2bStandInSandbox, sel: unknown): [number, StandInProcess] {
    const pid = pidOf(sel);
    const p = s.processes.get(pid);
    if (!p) throw new ApiError(404, `process with pid ${pid} not found`, "not_found");
    return [pid, p];
  }

  /** `Start` (a new process, its whole output) or `Connect` (a running one, what comes next): its events, then its end. */
  async function stream(
    req: IncomingMessage,
    res: ServerResponse,
    s: E2bStandInSandbox,
    rpc: "Start" | "Connect",
  ): Promise<void> {
    const msg = readFirstEnvelope(await readBody(req)) as {
      process?: {
        cmd?: string;
        args?: string[];
        envs?: Record<string, string>;
        cwd?: string;
        selector?: { pid?: number };
      };
      pty?: { size?: { cols?: number; rows?: number } };
      stdin?: boolean;
    };
    const timeoutMs = Number(req.headers["connect-timeout-ms"] ?? "0");
    let pid: number;
    let proc: StandInProcess;
    if (rpc === "Start") {
      const p = msg.process ?? {};
      if (!p.cmd) throw new ApiError(400, "process.cmd is required", "invalid_argument");
      const user = userOf(req);
      // Every command runs as uid 1000 with no capabilities (the local runner's sandbox): root cannot be had.
      if (user.uid === 0)
        throw new ApiError(
          403,
          "the E2B stand-in runs every process as 'user' (uid 1000, no capabilities): it cannot run one as root",
          "permission_denied",
        );
      pid = s.nextPid++;
      // Without a cwd the process starts in the backend's workspace (the user's home, /home/user, by default).
      const cwd = p.cwd ? resolvePath(p.cwd, user) : null;
      // envd checks the working directory before it spawns: a missing one is invalid_argument, as is a file
      // (its spawn fails). The user's home is there already; another one is checked in the sandbox.
      if (cwd && cwd !== user.home) await checkCwd(s, cwd);
      // envd gives a process a stdin pipe unless `stdin: false` (the field defaults to true), and a terminal with `pty`.
      const pty = msg.pty ? { cols: msg.pty.size?.cols ?? 80, rows: msg.pty.size?.rows ?? 24 } : undefined;
      const stdin = pty === undefined && msg.stdin !== false;
      const handle = await s.session.startCommand!({
        command_id: `pid-${pid}`,
        program: p.cmd,
        args: p.args ?? [],
        cwd,
        env: Object.entries({ ...s.envVars, ...(p.envs ?? {}) }),
        ...(timeoutMs > 0 ? { timeout_ms: timeoutMs } : {}),
        ...(pty ? { pty } : stdin ? { stdin: true } : {}),
      });
      proc = {
        handle,
        log: new OutputLog(),
        cmd: p.cmd,
        args: p.args ?? [],
        envs: p.envs ?? {},
        ...(cwd ? { cwd } : {}),
        ...(pty || stdin ? { input: { pty: pty !== undefined, closed: false } } : {}),
      };
      s.processes.set(pid, proc);
      // envd owns the process: it runs on when the client's stream goes away, and is forgotten once it ends.
      const started = proc;
      const startedPid = pid;
      void (async () => {
        for await (const chunk of handle.output) started.log.push(chunk);
        started.log.end();
        await handle.wait().catch(() => {});
        s.processes.delete(startedPid);
      })();
    } else {
      // proto-JSON inlines the oneof: {"process":{"pid":N}}.
      [pid, proc] = processFor(s, msg.process);
    }
    // Start streams the whole output; Connect only what comes after it (envd does not replay).
    const follower = proc.log.follow({ replay: rpc === "Start" });
    const field = (stream: string) => (proc.input?.pty ? "pty" : stream);
    res.on("close", follower.stop);
    res.writeHead(200, { "content-type": "application/connect+json" });
    res.write(envelope({ event: { start: { pid } } }));
    const keepalive = setInterval(() => res.write(envelope({ event: { keepalive: {} } })), 20_000);
    try {
      for await (const chunk of follower.output) {
        res.write(
          envelope({
            event: { data: { [field(chunk.stream)]: Buffer.from(chunk.data).toString("base64") } },
          }),
        );
      }
      if (res.destroyed) return;
      const result = await proc.handle.wait();
      if (!sandboxes.has(s.sandboxID)) {
        res.end(envelope({ error: { code: "unavailable", message: "sandbox was killed" } }, END_STREAM));
        return;
      }
      if (result.exit_code === null && /timed out/.test(result.stderr)) {
        res.end(
          envelope(
            { error: { code: "deadline_exceeded", message: "context deadline exceeded" } },
            END_STREAM,
          ),
        );
        return;
      }
      const code = result.exit_code ?? -1;
      res.write(
        envelope({
          event: {
            end: {
              exitCode: code,
              exited: result.exit_code !== null,
              status: result.exit_code === null ? "signal: killed" : `exit status ${code}`,
            },
          },
        }),
      );
      res.end(envelope({}, END_STREAM));
    } finally {
      clearInterval(keepalive);
      res.off("close", follower.stop);
    }
  }

  /** envd's cwd check: `cwd '<path>' does not exist` (invalid_argument); a file fails the spawn the same way. */
  async function checkCwd(s: E2bStandInSandbox, cwd: string): Promise<void> {
    let type: unknown;
    try {
      type = ((await fsOp(s.session, "stat", { path: cwd })).entry as { type?: unknown } | undefined)?.type;
    } catch (e) {
      if (e instanceof EnvdFsError && e.connectCode === "not_found")
        throw new ApiError(400, `cwd '${cwd}' does not exist`, "invalid_argument");
      throw e;
    }
    if (type !== "FILE_TYPE_DIRECTORY")
      throw new ApiError(400, `fork/exec /bin/bash: chdir ${cwd}: not a directory`, "invalid_argument");
  }

  /** A unary `process.Process` RPC: List, SendSignal, SendInput, CloseStdin, Update. */
  async function processRpc(
    s: E2bStandInSandbox,
    rpc: string,
    body: Record<string, unknown>,
  ): Promise<unknown> {
    if (rpc === "List")
      return {
        processes: [...s.processes.entries()].map(([pid, p]) => ({
          pid,
          config: { cmd: p.cmd, args: p.args, envs: p.envs, ...(p.cwd ? { cwd: p.cwd } : {}) },
        })),
      };
    const [, p] = processFor(s, body.process);
    if (rpc === "SendSignal") {
      await p.handle.kill(body.signal === "SIGNAL_SIGTERM" || body.signal === 15 ? "SIGTERM" : "SIGKILL");
      return {};
    }
    if (rpc === "SendInput") {
      const input = (body.input ?? {}) as { stdin?: string; pty?: string };
      const toPty = input.pty !== undefined;
      if (!toPty && input.stdin === undefined)
        throw new ApiError(501, "invalid input type <nil>", "unimplemented");
      const fail = (m: string) => new ApiError(500, m, "internal");
      if (toPty && !p.input?.pty)
        throw fail(
          "error writing to tty: tty not assigned to process — input should be written to the stdin, not the tty",
        );
      if (!toPty && p.input?.pty)
        throw fail(
          "error writing to stdin: tty assigned to process — input should be written to the pty, not the stdin",
        );
      if (!p.input || p.input.closed || !p.handle.write)
        throw fail("error writing to stdin: stdin not enabled or closed");
      await p.handle
        .write(Buffer.from(String(toPty ? input.pty : input.stdin), "base64"))
        .catch((e: Error) => {
          throw fail(`error writing to ${toPty ? "tty" : "stdin"}: ${e.message}`);
        });
      return {};
    }
    if (rpc === "CloseStdin") {
      if (p.input?.pty)
        throw new ApiError(
          500,
          "error closing stdin: cannot close stdin for PTY process — send Ctrl+D (0x04) instead",
          "unknown",
        );
      if (p.input && !p.input.closed) {
        p.input.closed = true;
        await p.handle.closeStdin?.();
      }
      return {};
    }
    if (rpc === "Update") {
      const size = (body.pty as { size?: { cols?: number; rows?: number } } | undefined)?.size;
      if (size) {
        if (!p.input?.pty)
          throw new ApiError(500, "error resizing tty: tty not assigned to process", "internal");
        await p.handle.resize?.(size.cols ?? 0, size.rows ?? 0);
      }
      return {};
    }
    throw new ApiError(404, `unknown method process.Process/${rpc}`, "unimplemented");
  }

  return { stream, processRpc };
}
