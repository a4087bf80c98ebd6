import { createServer, type RequestListener, type Server } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { createSecureContext, TLSSocket } from "node:tls";
import { createTestCa, type TestCa } from "./test-ca.js";

/** One CONNECT the proxy received: allowed ones were answered by the proxy itself, the rest refused. */
export interface InterceptedConnect {
  host: string;
  port: number;
  allowed: boolean;
}

/**
 * An HTTP proxy on 127.0.0.1 that stands in for HTTPS APIs whose host cannot be changed in the client: it
 * answers `CONNECT host:443` for the hosts it was given by terminating TLS itself (certificates from a CA made
 * for the run) and serving the requests with that host's handler. Every other CONNECT and every plain-HTTP
 * proxy request is refused with 403: no traffic leaves the machine.
 *
 * Point the client at it with `HTTPS_PROXY=<url>` and make it trust `ca.certFile`.
 */
export interface HttpsInterceptProxy {
  /** `http://127.0.0.1:PORT` — the value for `HTTPS_PROXY`. */
  url: string;
  port: number;
  ca: TestCa;
  /** Every CONNECT received, in order. */
  connects: InterceptedConnect[];
  stop(): Promise<void>;
}

export interface HttpsInterceptOptions {
  /**
   * Host name → the handler that serves it (as if it were that host's HTTPS server). Port 443 only. A name
   * `*.example.test` serves every host one label below it (`a.example.test`), each with its own certificate,
   * issued at its first CONNECT; an exact name wins over a wildcard.
   */
  hosts: Record<string, RequestListener>;
  /** A CA to issue from (default: a new one, disposed by `stop`). */
  ca?: TestCa;
}

export async function startHttpsInterceptProxy(opts: HttpsInterceptOptions): Promise<HttpsInterceptProxy> {
  const ownCa = !opts.ca;
  const ca = opts.ca ?? createTestCa();
  const sockets = new Set<Socket>();
  const track = (s: Socket) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  };
  const inner = new Map<string, Server>();
  for (const [host, listener] of Object.entries(opts.hosts))
    inner.set(host.toLowerCase(), createServer({ keepAliveTimeout: 30_000 }, listener));
  const contexts = new Map<string, ReturnType<typeof createSecureContext>>();
  /** The server for a CONNECT host (exact, else `*.` its parent) and a TLS context with that host's certificate. */
  const serve = (host: string) => {
    const dot = host.indexOf(".");
    // A wildcard stands for one DNS label (as in certificates): `a.b.example.test` is not `*.example.test`.
    const label = dot > 0 && /^[a-z0-9-]+$/.test(host.slice(0, dot));
    const server = inner.get(host) ?? (label ? inner.get(`*.${host.slice(dot + 1)}`) : undefined);
    if (!server) return undefined;
    let context = contexts.get(host);
    if (!context) {
      const { certPem, keyPem } = ca.issue([host]);
      context = createSecureContext({ cert: certPem, key: keyPem });
      contexts.set(host, context);
    }
    return { server, context };
  };
  const connects: InterceptedConnect[] = [];
  const proxy = createServer((_req, res) => {
    // A plain-HTTP proxy request (absolute URL) or a direct request: never forwarded anywhere.
    res.writeHead(403, { "content-type": "text/plain", connection: "close" });
    res.end(`this test proxy only answers CONNECT to ${[...inner.keys()].join(", ")}\n`);
  });
  proxy.on("connection", track);
  proxy.on("connect", (req, socket: Socket, head: Buffer) => {
    socket.on("error", () => socket.destroy());
    const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(req.url ?? "");
    const host = m?.[1]?.toLowerCase() ?? "";
    const port = Number(m?.[2] ?? 0);
    const target = port === 443 ? serve(host) : undefined;
    connects.push({ host, port, allowed: Boolean(target) });
    if (!target) {
      socket.end(
        "HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\n" +
          `CONNECT ${host}:${port} refused: this test proxy lets nothing leave the machine\n`,
      );
      return;
    }
    socket.write("HTTP/1.1 200 Connection Established\r\n\r\n");
    if (head.length > 0) socket.unshift(head);
    const tls = new TLSSocket(socket, {
      isServer: true,
      secureContext: target.context,
      ALPNProtocols: ["http/1.1"],
    });
    tls.on("error", () => socket.destroy());
    track(tls);
    target.server.emit("connection", tls);
  });
  await new Promise<void>((resolve, reject) => {
    proxy.once("error", reject);
    proxy.listen(0, "127.0.0.1", () => resolve());
  });
  const port = (proxy.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    ca,
    connects,
    async stop() {
      for (const s of sockets) s.destroy();
      for (const server of inner.values()) server.close();
      await new Promise<void>((r) => proxy.close(() => r()));
      if (ownCa) ca.dispose();
    },
  };
}
