import type { IncomingMessage, RequestListener, ServerResponse } from "node:http";
import type { createFaultSwitch } from "../fault/faults.js";
import { END_STREAM, envelope } from "./connect-envelope.js";
import type { E2bContext } from "./e2b-context.js";
import { ApiError, CONNECT_STATUS, json } from "./e2b-http.js";
import type { E2bStandIn, E2bStandInSandbox } from "./e2b-standin-types.js";
import { fileSignature, signatureMatches } from "./envd-signature.js";
import { proxyToPort } from "./port-proxy.js";

/** envd's port: requests routed to any other port go to the sandbox's own servers (`getHost`). */
const ENVD_PORT = 49983;

/**
 * E2B's edge on the stand-in's one port: each request recorded, faults applied, then routed — to a sandbox's port
 * (`<port>-<id>.<domain>` or the `E2b-Sandbox-Port` header; traffic wakes an auto-resume sandbox), to its envd
 * (`E2b-Sandbox-Id`, or a signed `/files` URL), or to the control plane; errors answered as each part answers them.
 */
export function createEdge(
  ctx: E2bContext,
  parts: {
    control: (req: IncomingMessage, res: ServerResponse, url: URL) => Promise<void>;
    envd: (req: IncomingMessage, res: ServerResponse, url: URL, s: E2bStandInSandbox) => Promise<void>;
    faults: ReturnType<typeof createFaultSwitch>;
    requests: E2bStandIn["requests"];
  },
): RequestListener {
  const { sandboxes, domain, resumeNow, runningSandbox } = ctx;
  const { control, envd, faults, requests } = parts;

  /** A signed `/files` URL without routing headers: the running sandbox whose access token signed it. */
  function signedBy(req: IncomingMessage, url: URL): E2bStandInSandbox | undefined {
    const q = url.searchParams;
    const signature = q.get("signature");
    if (!signature) return undefined;
    const exp = q.get("signature_expiration");
    const op = req.method === "GET" ? "read" : "write";
    for (const s of sandboxes.values()) {
      const expected = fileSignature(
        q.get("path") ?? "",
        op,
        q.get("username") ?? "",
        s.envdAccessToken,
        exp === null ? undefined : Number.parseInt(exp, 10),
      );
      if (signatureMatches(expected, signature)) return s;
    }
    return undefined;
  }

  /** Where a request goes: a sandbox port by `Host: <port>-<id>.<domain>` or the `E2b-Sandbox-*` headers. */
  function routeOf(req: IncomingMessage): { id: string; port: number } | undefined {
    const host = String(req.headers.host ?? "").replace(/:\d+$/, "");
    const m = /^(\d+)-([^.]+)\.(.+)$/.exec(host);
    if (m && m[3] === domain) return { id: m[2]!, port: Number(m[1]) };
    const id = req.headers["e2b-sandbox-id"];
    if (id === undefined) return undefined;
    return { id: String(id), port: Number(req.headers["e2b-sandbox-port"] ?? ENVD_PORT) || ENVD_PORT };
  }

  const handle: RequestListener = (req, res) => {
    const at = Date.now();
    res.on("finish", () =>
      requests.push({
        method: req.method ?? "",
        path: (req.url ?? "").split("?")[0]!,
        status: res.statusCode,
        at,
      }),
    );
    void (async () => {
      if (await faults.apply(req, res)) return;
      const url = new URL(req.url ?? "/", "http://x");
      const route = routeOf(req);
      // A signed /files URL carries no routing header: it is the sandbox whose token signed it.
      const signed = !route && url.pathname === "/files" ? signedBy(req, url) : undefined;
      const isEnvd = route !== undefined || url.pathname === "/health" || url.searchParams.has("signature");
      const streaming = /^\/(process\.Process\/(Start|Connect)|filesystem\.Filesystem\/WatchDir)$/.test(
        url.pathname,
      );
      try {
        if (route && route.port !== ENVD_PORT) {
          // Traffic to a paused sandbox with auto-resume wakes it (for as long as it was created with).
          const paused = sandboxes.get(route.id);
          if (paused?.state === "paused" && paused.lifecycle.autoResume) resumeNow(paused, paused.timeoutS);
          const s = runningSandbox(route.id);
          const { url: target } = await s.session.exposePort({ port: route.port });
          if (!target) throw new ApiError(502, "the backend exposes no URL for this port");
          await proxyToPort(req, res, target, s.sandboxID, route.port);
        } else if (route) await envd(req, res, url, runningSandbox(route.id));
        else if (signed) await envd(req, res, url, signed);
        else if (url.pathname === "/health") json(res, 204);
        else if (isEnvd) throw new ApiError(401, "invalid signature");
        else await control(req, res, url);
      } catch (error) {
        req.resume();
        const e = error instanceof ApiError ? error : new ApiError(500, "internal error", "internal");
        // A streaming RPC's error is the end of its stream (HTTP 200), as Connect servers send it.
        if (res.headersSent || (streaming && e.connectCode && e.body === undefined)) {
          if (!res.headersSent) res.writeHead(200, { "content-type": "application/connect+json" });
          res.end(envelope({ error: { code: e.connectCode ?? "internal", message: e.message } }, END_STREAM));
          return;
        }
        if (e.body !== undefined) json(res, e.status, e.body);
        else if (isEnvd && e.connectCode)
          json(res, CONNECT_STATUS[e.connectCode] ?? e.status, { code: e.connectCode, message: e.message });
        else json(res, e.status, { code: e.status, message: e.message });
      }
    })();
  };

  return handle;
}
