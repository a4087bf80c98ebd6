import type { IncomingMessage, ServerResponse } from "node:http";
import type { E2bContext } from "./e2b-context.js";
import { ApiError, checkToken, json, readJsonBody } from "./e2b-http.js";
import type { E2bStandInSandbox } from "./e2b-standin-types.js";
import { files, filesystemRpc, watchDir } from "./envd-filesystem.js";
import { ENVD_USERS } from "./envd-paths.js";
import { createEnvdProcess } from "./envd-process.js";
import { sandboxMetrics } from "./sandbox-metrics.js";

/** A sandbox's envd: its routes, each request held as one of its connections (a killed VM's drop). */
export function createEnvd(ctx: E2bContext) {
  const { stream, processRpc } = createEnvdProcess(ctx);

  /** The sandbox's envd: `/health`, `/files`, `/envs`, `/metrics` and the Connect services. */
  async function envd(req: IncomingMessage, res: ServerResponse, url: URL, s: E2bStandInSandbox) {
    if (url.pathname === "/health") return json(res, 204);
    s.connections.add(res);
    res.on("close", () => s.connections.delete(res));
    if (url.pathname === "/files") return files(req, res, url, s);
    checkToken(req, s.envdAccessToken);
    if (url.pathname === "/envs" && req.method === "GET") return json(res, 200, s.envVars);
    if (url.pathname === "/metrics" && req.method === "GET") return json(res, 200, await envdMetrics(s));
    const rpcMatch = /^\/(process\.Process|filesystem\.Filesystem)\/(\w+)$/.exec(url.pathname);
    if (rpcMatch) {
      const [, service, rpc] = rpcMatch;
      if (service === "process.Process" && (rpc === "Start" || rpc === "Connect"))
        return stream(req, res, s, rpc);
      if (service === "filesystem.Filesystem" && rpc === "WatchDir") return watchDir(req, res, s);
      const body = await readJsonBody(req);
      if (service === "process.Process") return json(res, 200, await processRpc(s, rpc!, body));
      return json(res, 200, await filesystemRpc(req, s, rpc!, body));
    }
    throw new ApiError(404, "not found");
  }

  /** envd's `/metrics` of the sandbox, measured inside it. */
  async function envdMetrics(s: E2bStandInSandbox) {
    const m = await sandboxMetrics(s.session, ENVD_USERS.user!.home, s.cpuTicks);
    return {
      ts: Math.floor(Date.now() / 1000),
      cpu_count: m.cpuCount,
      cpu_used_pct: m.cpuUsedPct,
      mem_total: m.memTotal,
      mem_used: m.memUsed,
      mem_cache: m.memCache,
      mem_total_mib: Math.floor(m.memTotal / 1048576),
      mem_used_mib: Math.floor(m.memUsed / 1048576),
      disk_used: m.diskUsed,
      disk_total: m.diskTotal,
    };
  }

  return envd;
}
