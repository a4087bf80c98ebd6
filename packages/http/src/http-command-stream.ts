import {
  CancelledError,
  checkTerminalSize,
  codecs,
  OutputQueue,
  ProviderApiError,
  type RunnerCommandHandle,
  type RunnerCommandResult,
  RunnerError,
  sleep,
} from "@roder/runner-contract";
import type { HttpAnswer } from "./http-transport.js";
import { frameError, readFrames, type SessionWire } from "./http-wire.js";

/**
 * Stdin of a command as the server takes it: each write says the byte offset it starts at (the bytes this
 * handle has had taken so far), so a write resent after a lost answer is applied once; writes are sent one
 * at a time, in order.
 */
export function stdinWriter(w: SessionWire, commandId: string, start: Promise<number>) {
  let chain: Promise<unknown> = Promise.resolve();
  let offset: number | null = null;
  const base = `${w.path}/commands/${encodeURIComponent(commandId)}`;
  const serial = <T>(fn: () => Promise<T>): Promise<T> => {
    const run = chain.then(fn);
    chain = run.catch(() => {});
    return run;
  };
  return {
    write: (data: string | Uint8Array) =>
      serial(async () => {
        offset ??= await start;
        const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
        const res = await w.t.request("POST", `${base}/stdin?offset=${offset}`, {
          body: bytes,
          idempotent: true,
          operation: "write to stdin",
          buffer: true,
          sessionId: w.sessionId,
        });
        offset = ((await res.json()) as { offset: number }).offset;
      }),
    closeStdin: () =>
      serial(async () => {
        await w.t.request("POST", `${base}/stdin/close`, {
          idempotent: true,
          operation: "close stdin",
          buffer: true,
          sessionId: w.sessionId,
        });
      }),
    resize: (cols: number, rows: number) =>
      serial(async () => {
        checkTerminalSize(cols, rows);
        await w.t.request("POST", `${base}/resize`, {
          json: JSON.stringify({ cols, rows }),
          idempotent: true,
          operation: "resize terminal",
          buffer: true,
          sessionId: w.sessionId,
        });
      }),
  };
}

/**
 * One NDJSON command stream as a handle. Aborting `signal` cancels the command on the server; `detach()`
 * only drops this connection (the command keeps running, `wait()` attaches again for the result).
 */
export async function followCommand(
  w: SessionWire,
  session: {
    cancelCommand(commandId: string): Promise<boolean>;
    attachCommand(commandId: string): Promise<RunnerCommandHandle>;
  },
  commandId: string,
  signal: AbortSignal | undefined,
  open: (signal: AbortSignal) => Promise<HttpAnswer>,
  interactive: { pty: boolean; attached?: boolean } | null = null,
): Promise<RunnerCommandHandle> {
  // Where this handle's stdin writes start: 0 for a command it started, the server's word for an attach.
  let knowOffset!: (n: number) => void;
  const stdinStart = new Promise<number>((resolve) => {
    knowOffset = resolve;
  });
  if (interactive && !interactive.attached) knowOffset(0);
  const detacher = new AbortController();
  const onAbort = () => {
    // The server keeps a disconnected command running: cancel it explicitly, then drop the stream.
    void session.cancelCommand(commandId).catch(() => false);
    detacher.abort();
  };
  signal?.addEventListener("abort", onAbort, { once: true });
  let res: HttpAnswer;
  try {
    res = await open(signal ? AbortSignal.any([signal, detacher.signal]) : detacher.signal);
  } catch (error) {
    signal?.removeEventListener("abort", onAbort);
    throw error;
  }
  const body = res.body;
  if (!body) throw new RunnerError("provider_api", "the streaming response has no body");
  const output = new OutputQueue();
  let detached = false;
  let settled = false;
  let resolveResult!: (r: RunnerCommandResult) => void;
  let rejectResult!: (e: unknown) => void;
  const streamed = new Promise<RunnerCommandResult>((res2, rej) => {
    resolveResult = (r) => {
      settled = true;
      res2(r);
    };
    rejectResult = (e) => {
      settled = true;
      rej(e);
    };
  });
  streamed.catch(() => {});
  // Bytes of each stream handed out so far: a stream cut before its result is resumed through the attach
  // route, skipping what was already delivered (the server says where its replay starts).
  const delivered = { stdout: 0, stderr: 0 };
  const combined = signal ? AbortSignal.any([signal, detacher.signal]) : detacher.signal;
  const cutError = (error: unknown, why: string) =>
    RunnerError.isInstance(error) && error.code !== "provider_api"
      ? error
      : // Typed, and not retryable: the command may be running still.
        new ProviderApiError(
          { providerId: w.providerId, message: `command ${commandId}: ${why}`, isRetryable: false },
          { cause: error },
        );
  (async () => {
    let stream = body;
    let skip: { stdout: number; stderr: number } | null = { stdout: 0, stderr: 0 };
    let resumable = false;
    for (let resumes = 0; ; resumes++) {
      let gotResult = false;
      try {
        for await (const msg of readFrames(stream, "command stream")) {
          if (msg.type === "started") resumable = msg.attachable === true;
          else if (msg.type === "attached") {
            resumable = true;
            if (resumes === 0) knowOffset(msg.stdin_offset ?? 0);
            // Where this replay starts, per stream; a gap (output dropped before what we saw) cannot resume.
            const o = msg.offset;
            if (resumes === 0 && o) {
              // A first attach: what the replay starts after counts as seen.
              delivered.stdout = o.stdout;
              delivered.stderr = o.stderr;
            }
            skip =
              o && o.stdout <= delivered.stdout && o.stderr <= delivered.stderr
                ? { stdout: delivered.stdout - o.stdout, stderr: delivered.stderr - o.stderr }
                : null;
            if (resumes > 0 && skip === null)
              throw new RunnerError("provider_api", "the server no longer holds the output that was missed");
          } else if (msg.type === "stdout" || msg.type === "stderr") {
            let data = new Uint8Array(Buffer.from(msg.data, "base64"));
            const left = skip?.[msg.type] ?? 0;
            if (left > 0) {
              skip![msg.type] = Math.max(0, left - data.length);
              if (data.length <= left) continue;
              data = data.subarray(left);
            }
            delivered[msg.type] += data.length;
            output.push({ stream: msg.type, data });
          } else if (msg.type === "result") {
            gotResult = true;
            resolveResult(codecs.RunnerCommandResult.parse(msg.result));
          } else if (msg.type === "error") {
            gotResult = true;
            rejectResult(frameError(w, msg, "command stream"));
          }
        }
        if (!gotResult) throw new RunnerError("provider_api", "the command stream ended without a result");
        break;
      } catch (error) {
        if (signal?.aborted) rejectResult(new CancelledError({ operation: "command stream" }));
        else if (detached) rejectResult(new RunnerError("detached", "this handle was detached"));
        else if (RunnerError.isInstance(error) && error.code !== "provider_api") rejectResult(error);
        else if (!resumable || resumes >= 3)
          rejectResult(cutError(error, "the output stream was cut before its result"));
        else {
          // The command runs on at the server: follow it again and continue where the cut left off.
          try {
            await sleep(100 * 2 ** resumes, combined);
            const again = await w.t.request(
              "GET",
              `${w.path}/commands/${encodeURIComponent(commandId)}/stream`,
              {
                signal: combined,
                idempotent: true,
                operation: "resume command stream",
                sessionId: w.sessionId,
              },
            );
            if (!again.body) throw new RunnerError("provider_api", "the streaming response has no body");
            stream = again.body;
            skip = null;
            continue;
          } catch (resumeError) {
            if (signal?.aborted) rejectResult(new CancelledError({ operation: "command stream" }));
            else if (detached) rejectResult(new RunnerError("detached", "this handle was detached"));
            else rejectResult(cutError(resumeError, "the output stream was cut and could not be resumed"));
          }
        }
        break;
      }
    }
    signal?.removeEventListener("abort", onAbort);
    knowOffset(0);
    output.end();
  })();
  const stdin = interactive ? stdinWriter(w, commandId, stdinStart) : null;
  let reattached: Promise<RunnerCommandResult> | undefined;
  return {
    commandId,
    output,
    wait: () => {
      if (!detached) return streamed;
      // Detached before the result arrived: follow the command again, only for its result.
      reattached ??= streamed.catch(async (error) => {
        if (!RunnerError.isInstance(error) || error.code !== "detached") throw error;
        const again = await session.attachCommand(commandId);
        return again.wait();
      });
      return reattached;
    },
    kill: async () => session.cancelCommand(commandId),
    detach: async () => {
      if (settled) return;
      detached = true;
      detacher.abort();
    },
    ...(stdin ? { write: stdin.write, closeStdin: stdin.closeStdin } : {}),
    ...(stdin && interactive?.pty ? { resize: stdin.resize } : {}),
  };
}
