import { createServer, request as httpRequest, type Server } from "node:http";
import { send } from "./fly-http.js";
import type { FlyStandInMachine } from "./fly-standin-types.js";

/** The app's public address: Fly's proxy, routing by `fly-force-instance-id` to a machine's service. */
export function createFlyAppProxy(machines: Map<string, FlyStandInMachine>): Server {
  let roundRobin = 0;
  return createServer((req, res) => {
    const fail = (status: number, message: string) => {
      req.resume();
      send(res, status, { error: message, status: "unknown" });
    };
    const wanted = req.headers["fly-force-instance-id"];
    const candidates = [...machines.values()].filter(
      (m) => m.state === "started" && m.serviceUrl !== undefined,
    );
    const m =
      typeof wanted === "string"
        ? candidates.find((x) => x.id === wanted)
        : candidates[roundRobin++ % Math.max(1, candidates.length)];
    if (!m)
      return fail(
        503,
        typeof wanted === "string"
          ? `machine ${wanted} is not started or has no service`
          : "no started machine with a service",
      );
    const headers = { ...req.headers };
    delete headers["fly-force-instance-id"];
    const target = new URL(m.serviceUrl!);
    const upstream = httpRequest(
      { host: target.hostname, port: Number(target.port), method: req.method, path: req.url, headers },
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      },
    );
    upstream.on("error", () => {
      if (!res.headersSent) fail(502, `machine ${m.id} refused the connection on its internal port`);
      else res.destroy();
    });
    res.on("close", () => upstream.destroy());
    req.pipe(upstream);
  });
}
