import { randomBytes } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { type E2bContext, TEAM } from "./e2b-context.js";
import { ApiError, json, notFoundMsg, readJsonBody } from "./e2b-http.js";
import type { E2bStandInSandbox } from "./e2b-standin-types.js";

/** Seconds a create without `timeout` gets (infra sandboxtypes.SandboxTimeoutDefault); the 2.51 SDK sends none without `timeoutMs`. */
const CREATE_DEFAULT_TIMEOUT_S = 15;
/** Seconds a `connect` without `timeout` gets. */
const CONNECT_DEFAULT_TIMEOUT_S = 300;

/**
 * E2B's control plane (REST, `X-API-KEY`): sandboxes (create, list, get, kill, timeout, connect, pause, fork,
 * metrics) and snapshots (make, list, delete), as infra's API answers them.
 */
export function createControlPlane(ctx: E2bContext) {
  /** A sandbox as `GET /sandboxes[/{id}]` lists it. */
  const view = (s: E2bStandInSandbox) => ({
    sandboxID: s.sandboxID,
    templateID: s.templateID,
    clientID: "standin",
    alias: s.templateID,
    state: s.state,
    metadata: s.metadata,
    startedAt: s.startedAt,
    endAt: s.endAt,
    cpuCount: 2,
    memoryMB: 512,
    diskSizeMB: 1024,
    envdVersion: ctx.envdVersion,
    envdAccessToken: s.envdAccessToken,
    domain: ctx.domain,
    lifecycle: s.lifecycle,
  });
  /** The answer of a create, a connect and each fork: how to reach the sandbox's envd. */
  const created = (s: E2bStandInSandbox) => ({
    sandboxID: s.sandboxID,
    templateID: s.templateID,
    clientID: "standin",
    envdVersion: ctx.envdVersion,
    envdAccessToken: s.envdAccessToken,
    trafficAccessToken: null,
    domain: ctx.domain,
  });

  /** A control-plane request (the API key checked first). */
  async function control(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    if (req.headers["x-api-key"] !== ctx.apiKey)
      throw new ApiError(401, "Invalid API key, it must start with 'e2b_' prefix");
    const parts = url.pathname.split("/").filter(Boolean);
    const method = req.method ?? "GET";
    const v2 = parts[0] === "v2";
    const p = v2 ? parts.slice(1) : parts;
    if (parts[0] === "snapshots" && parts.length === 1 && method === "GET") {
      const bySandbox = url.searchParams.get("sandboxID");
      const name = url.searchParams.get("name");
      const list = [...ctx.snapshots.entries()]
        .filter(([, snap]) => !bySandbox || snap.sandboxID === bySandbox)
        .filter(([raw]) => !name || ctx.findSnapshot(name)?.raw === raw)
        .map(([, snap]) => ({ snapshotID: snap.snapshotID, names: snap.names }));
      return json(res, 200, list);
    }
    if (parts[0] === "templates" && parts.length === 2 && method === "DELETE") {
      const found = ctx.findSnapshot(decodeURIComponent(parts[1]!));
      if (!found) throw new ApiError(404, `template '${decodeURIComponent(parts[1]!)}' not found`);
      ctx.snapshots.delete(found.raw);
      return json(res, 204);
    }
    if (p[0] !== "sandboxes") throw new ApiError(404, "not found");
    if (p.length === 1 && method === "POST") {
      const body = await readJsonBody<{
        templateID?: string;
        metadata?: Record<string, string>;
        envVars?: Record<string, string>;
        timeout?: number;
        autoPause?: boolean;
        autoPauseMemory?: boolean;
        autoResume?: { enabled?: boolean };
      }>(req);
      if (!body.templateID) throw new ApiError(400, "templateID is required");
      if (body.autoPause && body.autoPauseMemory === false)
        throw new ApiError(
          400,
          "the E2B stand-in cannot pause a sandbox without its memory (filesystem-only pause)",
        );
      // A template id that names a snapshot restores it (Sandbox.create(snapshotId)).
      const snap = ctx.findSnapshot(body.templateID)?.snap;
      if (!snap && ctx.templates !== "any" && !ctx.templates.includes(body.templateID))
        throw new ApiError(404, `template '${body.templateID}' not found`);
      const timeout = ctx.checkTimeout(body.timeout, CREATE_DEFAULT_TIMEOUT_S);
      ctx.checkConcurrency();
      const session = (id: string) =>
        snap
          ? ctx.options.backend.resumeSession({ ...snap.state, snapshot: snap.snapshot })
          : ctx.options.backend.createSession(ctx.backendDestination(id));
      const s = await ctx.launch(body.templateID, timeout, body.metadata ?? {}, body.envVars ?? {}, session, {
        autoPause: body.autoPause === true,
        autoResume: body.autoResume?.enabled === true,
      });
      return json(res, 201, created(s));
    }
    if (p.length === 1 && method === "GET") {
      const filter = new URLSearchParams(url.searchParams.get("metadata") ?? "");
      const states = url.searchParams.getAll("state").flatMap((x) => x.split(","));
      const list = [...ctx.sandboxes.values()].filter(
        (s) =>
          [...filter].every(([k, v]) => s.metadata[k] === v) &&
          (states.length === 0 || states.includes(s.state)),
      );
      return json(res, 200, list.map(view));
    }
    const s = ctx.sandboxes.get(p[1] ?? "");
    if (!s) throw new ApiError(404, notFoundMsg(p[1] ?? ""));
    if (p.length === 2 && method === "GET") return json(res, 200, view(s));
    if (p.length === 2 && method === "DELETE") {
      await ctx.destroy(s);
      return json(res, 204);
    }
    if (p[2] === "timeout" && method === "POST") {
      const body = await readJsonBody<{ timeout?: number }>(req);
      if (s.state !== "running") throw new ApiError(409, `Sandbox ${JSON.stringify(s.sandboxID)} is paused`);
      if (Date.now() - Date.parse(s.startedAt) > ctx.maxLengthMs)
        throw new ApiError(400, "Max instance length exceeded");
      // Sets the end exactly (shorter too), capped at the plan's maximum length after start.
      s.endAt = new Date(ctx.endFor(s, Math.max(0, Number(body.timeout ?? 0)))).toISOString();
      ctx.schedule(s);
      return json(res, 204);
    }
    if (p[2] === "snapshots" && method === "POST") {
      const body = await readJsonBody<{ name?: string }>(req);
      const name = body.name?.replace(/:default$/, "");
      if (name !== undefined && !/^[a-z0-9][a-z0-9._-]*$/i.test(name))
        throw new ApiError(400, `Invalid name: ${JSON.stringify(body.name)}`);
      const snapshot = await s.session.snapshot();
      if (!snapshot) throw new ApiError(500, "the backend made no snapshot");
      // A name is a template alias in the team's namespace; a second snapshot of one name replaces it.
      const named = name ? ctx.findSnapshot(`${TEAM}/${name}`) : undefined;
      if (named) ctx.snapshots.delete(named.raw);
      const raw = named?.raw ?? `snap_${randomBytes(8).toString("hex")}`;
      const names = name ? [`${TEAM}/${name}`] : [];
      const snapshotID = name ? `${TEAM}/${name}:default` : `${raw}:default`;
      ctx.snapshots.set(raw, {
        state: s.session.state(),
        snapshot,
        snapshotID,
        names,
        sandboxID: s.sandboxID,
      });
      return json(res, 201, { snapshotID, names });
    }
    if (p[2] === "fork" && method === "POST") {
      const body = await readJsonBody<{
        timeout?: number;
        count?: number;
      }>(req);
      const count = body.count ?? 1;
      if (!Number.isInteger(count) || count < 1 || count > 100)
        throw new ApiError(400, "count must be between 1 and 100");
      const timeout = ctx.checkTimeout(body.timeout, CREATE_DEFAULT_TIMEOUT_S);
      if (s.state !== "running")
        throw new ApiError(409, `Sandbox ${JSON.stringify(s.sandboxID)} is not running`);
      // Checkpointed in place (it keeps its id and end), then each fork starts from that checkpoint.
      const snapshot = await s.session.snapshot();
      if (!snapshot) throw new ApiError(500, "the backend made no snapshot");
      const state = s.session.state();
      const results = [];
      for (let i = 0; i < count; i++) {
        try {
          ctx.checkConcurrency();
          const fork = await ctx.launch(s.templateID, timeout, { ...s.metadata }, { ...s.envVars }, () =>
            ctx.options.backend.resumeSession({ ...state, snapshot }),
          );
          results.push({ sandbox: created(fork) });
        } catch (e) {
          const err = e instanceof ApiError ? e : new ApiError(500, (e as Error).message);
          results.push({ error: { code: err.status, message: err.message } });
        }
      }
      return json(res, 201, results);
    }
    if (p[2] === "metrics" && method === "GET") {
      const start = Number(url.searchParams.get("start") ?? Math.floor(Date.parse(s.startedAt) / 1000));
      const end = Number(url.searchParams.get("end") ?? Math.ceil(Date.now() / 1000));
      return json(
        res,
        200,
        s.metrics
          .filter((m) => m.timestampUnix >= start && m.timestampUnix <= end)
          .map((m) => ({
            timestamp: new Date(m.timestampUnix * 1000).toISOString(),
            timestampUnix: m.timestampUnix,
            cpuCount: m.cpuCount,
            cpuUsedPct: m.cpuUsedPct,
            memUsed: m.memUsed,
            memTotal: m.memTotal,
            memCache: m.memCache,
            diskUsed: m.diskUsed,
            diskTotal: m.diskTotal,
          })),
      );
    }
    if (p[2] === "pause" && method === "POST") {
      const body = await readJsonBody<{ memory?: boolean }>(req);
      if (body.memory === false)
        throw new ApiError(
          400,
          "the E2B stand-in cannot pause a sandbox without its memory (filesystem-only pause)",
        );
      if (s.state === "paused") throw new ApiError(409, `sandbox ${s.sandboxID} is already paused`);
      ctx.pauseNow(s);
      return json(res, 204);
    }
    if (p[2] === "connect" && method === "POST") {
      const body = await readJsonBody<{ timeout?: number }>(req);
      const timeout = ctx.checkTimeout(body.timeout, CONNECT_DEFAULT_TIMEOUT_S, true);
      const resumed = s.state === "paused";
      if (resumed) ctx.resumeNow(s, timeout);
      else {
        // A running sandbox's end only moves later (keep_alive.go, allowShorter=false).
        const end = ctx.endFor(s, timeout);
        if (end > Date.parse(s.endAt)) s.endAt = new Date(end).toISOString();
      }
      ctx.schedule(s);
      return json(res, resumed ? 201 : 200, created(s));
    }
    throw new ApiError(404, "not found");
  }

  return control;
}
