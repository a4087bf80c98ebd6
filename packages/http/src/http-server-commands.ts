import {
  codecs,
  type RunnerCommandHandle,
  RunnerError,
  redactSecrets,
  UnsupportedCapabilityError,
} from "@roder/runner-contract";
import { statusForError } from "./http-errors.js";
import { frame } from "./http-frames.js";
import type {
  Entry,
  IncomingMessage,
  ServerContext,
  ServerResponse,
  SessionRequest,
} from "./http-server-context.js";
import { commandRequest, type Line, lineWriter, readBody, send } from "./http-server-io.js";
import { HttpError } from "./http-server-policy.js";
import { scrubHostPaths } from "./http-server-scrub.js";
import { interactiveOptions, terminalSize } from "./http-server-stdin.js";

/**
 * `/sessions/{id}/commands…`: run, stream (NDJSON, with backpressure), attach, cancel, and a running command's
 * stdin (writes with offsets) and terminal size.
 */
export function commandRoutes(ctx: ServerContext) {
  const { provider, secrets } = ctx;

  /** Writes a command's NDJSON stream: chunks as they arrive, then its result (or an error line). */
  async function pipeHandle(res: ServerResponse, handle: RunnerCommandHandle, line: Line): Promise<void> {
    for await (const chunk of handle.output) {
      if (res.destroyed) break;
      // Backpressure: the next chunk is read only once the client took this one (a client that does not
      // read holds the server's buffer at one chunk, not at the command's whole output).
      await line(frame({ type: chunk.stream, data: Buffer.from(chunk.data).toString("base64") }));
    }
    // A client that went away left the command running (it can attach again): nobody waits for it here.
    if (res.destroyed) return;
    await line(
      frame({ type: "result", result: JSON.parse(codecs.RunnerCommandResult.encode(await handle.wait())) }),
    );
  }

  function streamError(line: Line, error: unknown, e: Entry): Promise<void> {
    return line(
      frame({
        type: "error",
        status: statusForError(error),
        error: {
          code: RunnerError.isInstance(error) ? error.code : "internal",
          message: scrubHostPaths(redactSecrets((error as Error).message, secrets()), e.hostPaths),
        },
      }),
    );
  }

  async function streamCommand(req: IncomingMessage, res: ServerResponse, e: Entry): Promise<void> {
    const text = await ctx.readJson(req);
    const request = commandRequest(text);
    const io = interactiveOptions(text);
    const interactive = io.stdin === true || io.pty !== undefined;
    const line = lineWriter(res);
    // With a backend that can attach, a command outlives its client's connection (bounded by its timeout
    // and the session) so the client can attach again; otherwise a lost connection cancels it.
    const attachable =
      typeof e.session.startCommand === "function" && typeof e.session.attachCommand === "function";
    const ac = new AbortController();
    let handle: RunnerCommandHandle | undefined;
    const onClose = () => {
      if (res.writableFinished) return;
      if (attachable && handle) void handle.detach?.();
      else ac.abort();
    };
    res.on("close", onClose);
    try {
      if (e.session.startCommand) {
        handle = await e.session.startCommand({ ...request, ...io }, attachable ? {} : { signal: ac.signal });
        if (interactive) e.inputs.register(handle);
        res.writeHead(200, { "content-type": "application/x-ndjson", "cache-control": "no-store" });
        await line(
          frame({
            type: "started",
            command_id: request.command_id,
            attachable,
            ...(interactive ? { stdin_offset: 0 } : {}),
          }),
        );
        if (res.destroyed) onClose();
        await pipeHandle(res, handle, line);
      } else {
        if (interactive)
          throw new UnsupportedCapabilityError({
            providerId: provider.id,
            capability: io.pty ? "pty" : "stdin",
            message: `the '${provider.id}' backend of this server cannot stream commands, nor write to their stdin`,
          });
        res.writeHead(200, { "content-type": "application/x-ndjson", "cache-control": "no-store" });
        await line(frame({ type: "started", command_id: request.command_id, attachable: false }));
        const result = await e.session.runCommand(request, { signal: ac.signal });
        await line(frame({ type: "result", result: JSON.parse(codecs.RunnerCommandResult.encode(result)) }));
      }
    } catch (error) {
      if (!res.headersSent) throw error;
      await streamError(line, error, e);
    } finally {
      res.off("close", onClose);
      res.end();
    }
  }

  async function attachStream(res: ServerResponse, e: Entry, commandId: string): Promise<void> {
    if (typeof e.session.attachCommand !== "function")
      throw new UnsupportedCapabilityError({
        providerId: provider.id,
        capability: "attach_command",
        message: `the '${provider.id}' backend of this server cannot reattach commands`,
      });
    const handle = await e.session.attachCommand(commandId);
    e.inputs.register(handle);
    const line = lineWriter(res);
    const onClose = () => {
      if (!res.writableFinished) void handle.detach?.();
    };
    res.on("close", onClose);
    res.writeHead(200, { "content-type": "application/x-ndjson", "cache-control": "no-store" });
    try {
      // `offset`: bytes of each stream before the replay, so a client resuming a cut stream continues exactly.
      await line(
        frame({
          type: "attached",
          command_id: commandId,
          offset: handle.replayOffset ?? null,
          // Where a client that writes to the command's stdin continues (bytes it has taken so far).
          stdin_offset: e.inputs.offset(commandId),
        }),
      );
      await pipeHandle(res, handle, line);
    } catch (error) {
      await streamError(line, error, e);
    } finally {
      res.off("close", onClose);
      res.end();
    }
  }

  /** Answers a `/sessions/{id}/commands…` request; false when the path is not one of these routes. */
  async function route({ req, res, url, parts, e }: SessionRequest): Promise<boolean> {
    const m = req.method ?? "GET";
    if (parts.length === 3 && m === "POST") {
      const request = commandRequest(await ctx.readJson(req));
      const ac = new AbortController();
      const onClose = () => {
        if (!res.writableFinished) ac.abort();
      };
      res.on("close", onClose);
      try {
        const result = await e.session.runCommand(request, { signal: ac.signal });
        send(res, 200, codecs.RunnerCommandResult.encode(result));
        return true;
      } finally {
        res.off("close", onClose);
      }
    }
    if (parts.length === 4 && parts[3] === "stream" && m === "POST") {
      await streamCommand(req, res, e);
      return true;
    }
    if (parts.length === 5 && parts[4] === "stream" && m === "GET") {
      await attachStream(res, e, parts[3]!);
      return true;
    }
    if (parts.length === 5 && parts[4] === "stdin" && m === "POST") {
      const raw = url.searchParams.get("offset") ?? "";
      const offset = Number(raw);
      if (!/^\d+$/.test(raw) || !Number.isSafeInteger(offset))
        throw new HttpError(400, "invalid_request", "the 'offset' query parameter (bytes) is required");
      const body = await readBody(req, ctx.maxJson);
      const after = await e.inputs.write(parts[3]!, offset, body);
      send(res, 200, JSON.stringify({ offset: after }));
      return true;
    }
    if (parts.length === 6 && parts[4] === "stdin" && parts[5] === "close" && m === "POST") {
      await readBody(req, ctx.maxJson);
      await e.inputs.close(parts[3]!);
      send(res, 204);
      return true;
    }
    if (parts.length === 5 && parts[4] === "resize" && m === "POST") {
      let size: { cols: number; rows: number };
      try {
        const { cols, rows } = JSON.parse(await ctx.readJson(req)) as { cols?: unknown; rows?: unknown };
        size = terminalSize(cols, rows);
      } catch (error) {
        if (error instanceof HttpError) throw error;
        throw new HttpError(400, "invalid_request", "the body must be JSON: { cols, rows }");
      }
      await e.inputs.resize(parts[3]!, size.cols, size.rows);
      send(res, 204);
      return true;
    }
    if (parts.length === 4 && m === "DELETE") {
      const cancelled = await e.session.cancelCommand(parts[3]!);
      send(res, 200, JSON.stringify({ cancelled }));
      return true;
    }
    return false;
  }

  return { route };
}
