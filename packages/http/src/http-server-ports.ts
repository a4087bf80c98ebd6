import { randomBytes } from "node:crypto";
import { request as httpRequest, type IncomingMessage, type ServerResponse } from "node:http";
import { codecs, redactSecrets } from "@roder/runner-contract";
import type { ServerContext, SessionRequest } from "./http-server-context.js";
import { send } from "./http-server-io.js";
import { HttpError } from "./http-server-policy.js";

/** Request headers that belong to one hop, or to this server (its bearer credential), never to the app. */
const DROP_REQUEST = new Set([
  "authorization",
  "proxy-authorization",
  "connection",
  "keep-alive",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "host",
]);
const DROP_RESPONSE = new Set(["connection", "keep-alive", "transfer-encoding", "trailer", "upgrade"]);

function jsonError(res: ServerResponse, status: number, code: string, message: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = JSON.stringify({ error: { code, message } });
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
  res.end(body);
}

/**
 * Forwards one request to a port of a session (the URL the backend's `exposePort` gave, reachable from the
 * server), streaming both ways with backpressure. The server's bearer credential is not forwarded. Resolves
 * when the answer is sent.
 */
export async function proxyToPort(args: {
  req: IncomingMessage;
  res: ServerResponse;
  /** The backend's URL for the port (null: the backend has none). */
  target: () => Promise<string | null>;
  /** Path and query for the app, starting with `/`. */
  path: string;
  secrets: readonly string[];
}): Promise<void> {
  const { req, res } = args;
  const backendUrl = await args.target();
  let target: URL;
  try {
    target = new URL(backendUrl ?? "");
    if (target.protocol !== "http:") throw new Error("not http");
  } catch {
    req.resume();
    return jsonError(res, 501, "unsupported_capability", "the backend gives no HTTP address for this port");
  }
  const headers: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(req.headers))
    if (v !== undefined && !DROP_REQUEST.has(k.toLowerCase())) headers[k] = v;
  headers.host = target.host;
  const prefix = target.pathname.replace(/\/+$/, "");
  await new Promise<void>((resolve) => {
    const upstream = httpRequest(
      {
        protocol: target.protocol,
        hostname: target.hostname,
        port: target.port,
        method: req.method,
        path: `${prefix}${args.path}`,
        headers,
      },
      (answer) => {
        const out: Record<string, string | string[]> = {};
        for (const [k, v] of Object.entries(answer.headers))
          if (v !== undefined && !DROP_RESPONSE.has(k.toLowerCase())) out[k] = v;
        res.writeHead(answer.statusCode ?? 502, out);
        answer.pipe(res);
        answer.on("error", () => res.destroy());
        res.on("close", () => {
          answer.destroy();
          resolve();
        });
      },
    );
    upstream.on("error", (error) => {
      jsonError(
        res,
        502,
        "port_unreachable",
        redactSecrets(
          `nothing answers on the session's port (${(error as NodeJS.ErrnoException).code ?? "error"})`,
          args.secrets,
        ),
      );
      resolve();
    });
    res.on("close", () => {
      upstream.destroy();
      resolve();
    });
    req.pipe(upstream);
  });
}

/** Port previews: `POST /sessions/{id}/ports`, `/sessions/{id}/ports/{port}/…` and `/previews/{preview_id}/…`. */
export function portRoutes(ctx: ServerContext) {
  /**
   * `/previews/{preview_id}/…`: a port preview, reachable without the bearer credential (a browser can open
   * it) by whoever holds its URL; the id is 128 random bits, valid while the session lives.
   */
  async function previewRoute(req: IncomingMessage, res: ServerResponse): Promise<boolean> {
    const target = req.url ?? "";
    const prefix = `${ctx.basePath}/previews/`;
    if (!target.startsWith(prefix)) return false;
    const rest = target.slice(prefix.length);
    const slash = rest.search(/[/?]/);
    const pv = ctx.previews.get(slash < 0 ? rest : rest.slice(0, slash));
    const e = pv ? ctx.sessions.get(pv.sessionId) : undefined;
    if (!pv || !e || ctx.expired(e))
      throw new HttpError(404, "not_found", "no such preview (its session is closed?)");
    const tail = slash < 0 ? "/" : rest.slice(slash);
    e.active++;
    try {
      await proxyToPort({
        req,
        res,
        target: async () => (await e.session.exposePort({ port: pv.port, label: null })).url,
        path: tail.startsWith("/") ? tail : `/${tail}`,
        secrets: ctx.secrets(),
      });
    } finally {
      e.active--;
      if (e.idleMs !== null) e.expiresAt = Date.now() + e.idleMs;
    }
    return true;
  }

  async function route({ req, res, url, parts, e, id }: SessionRequest): Promise<boolean> {
    const sub = parts[2];
    if (sub === "ports" && parts.length >= 4) {
      const port = Number(parts[3]);
      if (!Number.isInteger(port) || port < 1 || port > 65535 || !/^\d+$/.test(parts[3]!))
        throw new HttpError(400, "invalid_request", `port must be 1..65535, got '${parts[3]}'`);
      // The raw path after /ports/{port} (not decoded: the app gets what the client sent).
      const raw = url.pathname.slice(ctx.basePath.length).split("/").slice(5).join("/");
      await proxyToPort({
        req,
        res,
        target: async () => (await e.session.exposePort({ port, label: null })).url,
        path: `/${raw}${url.search}`,
        secrets: ctx.secrets(),
      });
      return true;
    }
    if (parts.length === 3 && req.method === "POST") {
      if (sub === "ports") {
        // The backend's URL (e.g. its loopback) is for the server only: the client gets this server's route
        // that proxies to it, under the URL it reaches the server by.
        const request = codecs.RunnerPortRequest.decode(await ctx.readJson(req));
        await e.session.exposePort(request);
        let url: string;
        if (ctx.options.authenticatedPreviews)
          url = `${ctx.publicBase(req)}/sessions/${id}/ports/${request.port}/`;
        else {
          let pv = e.previews.get(request.port);
          if (!pv) {
            pv = `pv_${randomBytes(16).toString("hex")}`;
            e.previews.set(request.port, pv);
            ctx.previews.set(pv, { sessionId: id, port: request.port });
          }
          url = `${ctx.publicBase(req)}/previews/${pv}/`;
        }
        send(res, 200, codecs.RunnerPortResult.encode({ port: request.port, url }));
        return true;
      }
    }
    return false;
  }

  return { previewRoute, route };
}
