import { randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { createFaultSwitch, serveWithFaults } from "../fault/faults.js";
import { createFlyAppProxy } from "./fly-app-proxy.js";
import { createExec } from "./fly-exec.js";
import { ApiError, readJson, send, sleep } from "./fly-http.js";
import { guestProblem, servicePort, suspendProblem } from "./fly-machine-config.js";
import { createMachineLifecycle } from "./fly-machine-lifecycle.js";
import type {
  FlyMachineState,
  FlyStandIn,
  FlyStandInMachine,
  FlyStandInOptions,
  FlyStandInVolume,
} from "./fly-standin-types.js";
import { createFlyVolumes } from "./fly-volumes.js";

export type { FlyStandIn, FlyStandInMachine, FlyStandInOptions } from "./fly-standin-types.js";

// The stand-in's options, machines and volumes: fly-standin-types.ts (with its description).
export async function startFlyStandIn(options: FlyStandInOptions): Promise<FlyStandIn> {
  const token = options.token ?? `fly-standin-${randomBytes(12).toString("hex")}`;
  const machines = new Map<string, FlyStandInMachine>();
  const volumes = new Map<string, FlyStandInVolume>();
  const requests: FlyStandIn["requests"] = [];
  const bodies: FlyStandIn["bodies"] = [];
  const faults = createFaultSwitch((status) =>
    JSON.stringify({ error: status === 429 ? "rate limit exceeded" : "internal error", status: "unknown" }),
  );
  const rate = options.rateLimit === undefined ? { perSecond: 1, burst: 3 } : options.rateLimit;
  const execLimitMs = options.execRequestLimitMs === undefined ? 30_000 : options.execRequestLimitMs;
  const resetOnStop = options.resetOnStop ?? true;
  const lingerMs = options.destroyedLingerMs ?? 5000;
  const enforceGuest = options.enforceGuestLimits ?? true;
  const transitionMs = options.transitionDelayMs ?? 50;
  let rateLimited = 0;
  let execTimeouts = 0;
  const flags = { failNextStart: false };
  const waiters = new Set<() => void>();
  const notify = () => {
    for (const w of [...waiters]) w();
  };
  const backendDestination =
    options.backendDestination ??
    ((id: string, config: Record<string, unknown>) => ({
      id: `fly-${id}`,
      provider_id: options.backend.id,
      // One sandbox per machine (its /tmp and processes shared by every command), on this host's network: the
      // stand-in models the internet as this host's loopback, where the tests' S3/GCS/Azure stand-ins listen.
      // A machine with a service has a network of its own (its internal port is its own), reached through a
      // forwarded port as Fly's proxy reaches a machine on its private address.
      config: {
        isolation: "bwrap",
        workspace_path: "/workspace",
        network: typeof servicePort({ config }) === "number" ? "egress" : "host",
        ...(options.imageDirs?.length ? { read_roots: options.imageDirs } : {}),
      },
      default_manifest: { entries: [], mounts: [] },
    }));

  // Token buckets per (machine or app, action): Fly's documented 1 req/s per action per machine, burst 3.
  const buckets = new Map<string, { tokens: number; at: number }>();
  const takeToken = (key: string) => {
    if (!rate) return;
    const now = Date.now();
    const b = buckets.get(key) ?? { tokens: rate.burst, at: now };
    b.tokens = Math.min(rate.burst, b.tokens + ((now - b.at) / 1000) * rate.perSecond);
    b.at = now;
    buckets.set(key, b);
    if (b.tokens < 1) {
      rateLimited += 1;
      throw new ApiError(
        429,
        "rate limit exceeded",
        "unknown",
        Math.max(1, Math.ceil((1 - b.tokens) / rate.perSecond)),
      );
    }
    b.tokens -= 1;
  };

  const { mountsOf, saveVolumes, restoreVolumes, routeVolumes, attachVolumes } = createFlyVolumes({
    volumes,
    machines,
    bodies,
    takeToken,
  });
  const { setState, view, boot, halt } = createMachineLifecycle({
    options,
    backendDestination,
    notify,
    flags,
    saveVolumes,
    restoreVolumes,
    transitionMs,
    resetOnStop,
  });
  const exec = createExec(execLimitMs, () => {
    execTimeouts += 1;
  });

  /** A machine of the app; destroyed ones answer only `GET` (and `wait?state=destroyed`) while they linger. */
  const machine = (app: string, id: string, lingering: boolean) => {
    const m = machines.get(id);
    if (!m || m.app !== app) throw new ApiError(404, "machine not found");
    if (m.state === "destroyed") {
      if (m.destroyed_at! + lingerMs < Date.now()) {
        machines.delete(id);
        throw new ApiError(404, "machine not found");
      }
      if (!lingering) throw new ApiError(404, "machine not found");
    }
    return m;
  };

  const checkLease = (req: IncomingMessage, m: FlyStandInMachine) => {
    if (m.lease && m.lease.expires_at * 1000 > Date.now()) {
      const nonce = req.headers["fly-machine-lease-nonce"];
      if (nonce !== m.lease.nonce) throw new ApiError(409, `machine ${m.id} is leased by ${m.lease.owner}`);
    }
  };

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://x");
    const parts = url.pathname.split("/").filter(Boolean);
    const method = req.method ?? "GET";
    if (req.headers.authorization !== `Bearer ${token}`) throw new ApiError(401, "unauthorized");
    if (parts[0] === "v1" && parts[1] === "apps" && parts[2] && parts[3] === "volumes" && parts.length <= 5)
      return routeVolumes(req, res, parts[2], parts[4]);
    if (parts[0] !== "v1" || parts[1] !== "apps" || !parts[2] || parts[3] !== "machines")
      throw new ApiError(404, "not found");
    const app = parts[2];
    const id = parts[4];
    const action = parts[5];
    if (!id) {
      if (method === "POST") {
        takeToken(`app:${app}:create`);
        const body = await readJson(req);
        bodies.push({ path: url.pathname, body });
        const config = body.config as Record<string, unknown> | undefined;
        if (!config || typeof config.image !== "string") throw new ApiError(400, "config.image is required");
        const problem = enforceGuest ? guestProblem(config.guest) : null;
        if (problem) throw new ApiError(422, `invalid machine config: ${problem}`);
        const now = new Date().toISOString();
        const machineId = randomBytes(7).toString("hex");
        // Without a region, a machine with a volume is placed where its volume is.
        const firstVolume = volumes.get(mountsOf({ config })[0]?.volume ?? "");
        const region = typeof body.region === "string" ? body.region : (firstVolume?.region ?? "iad");
        attachVolumes(app, machineId, region, config);
        const m: FlyStandInMachine = {
          id: machineId,
          app,
          name: typeof body.name === "string" ? body.name : `machine-${randomBytes(3).toString("hex")}`,
          state: "created",
          region,
          instance_id: randomBytes(10).toString("hex").toUpperCase(),
          config,
          created_at: now,
          updated_at: now,
          log: "",
        };
        machines.set(m.id, m);
        if (body.skip_launch !== true) void boot(m);
        return send(res, 200, view(m));
      }
      if (method === "GET") {
        takeToken(`app:${app}:list`);
        const filters = [...url.searchParams]
          .filter(([k]) => k.startsWith("metadata."))
          .map(([k, v]) => [k.slice(9), v] as const);
        const withDeleted = url.searchParams.get("include_deleted") === "true";
        const list = [...machines.values()].filter(
          (m) =>
            m.app === app &&
            (withDeleted || m.state !== "destroyed") &&
            filters.every(([k, v]) => (m.config.metadata as Record<string, string> | undefined)?.[k] === v),
        );
        return send(res, 200, list.map(view));
      }
    }
    if (!id) throw new ApiError(404, "not found");
    const key = action ?? (method === "DELETE" ? "delete" : "get");
    takeToken(`machine:${id}:${key}`);
    const m = machine(app, id, (method === "GET" && !action) || action === "wait");
    if (!action) {
      if (method === "GET") return send(res, 200, view(m));
      if (method === "DELETE") {
        checkLease(req, m);
        if (m.state === "started" && url.searchParams.get("force") !== "true")
          throw new ApiError(
            412,
            "failed_precondition: machine is running: stop it first or pass force=true",
          );
        setState(m, "destroying");
        const s = m.session;
        m.session = undefined;
        m.init = undefined;
        if (s) await saveVolumes(m, s);
        await s?.close().catch(() => {});
        await sleep(transitionMs);
        for (const v of volumes.values()) if (v.attached_machine_id === m.id) v.attached_machine_id = null;
        setState(m, "destroyed");
        return send(res, 200, { ok: true });
      }
    }
    if (action === "wait" && method === "GET") {
      const want = url.searchParams.get("state") ?? "started";
      const timeoutS = Number(url.searchParams.get("timeout") ?? "60");
      if (!Number.isInteger(timeoutS) || timeoutS < 1 || timeoutS > 60)
        throw new ApiError(400, "timeout must be a whole number of seconds between 1 and 60");
      const deadline = Date.now() + timeoutS * 1000;
      while (m.state !== want) {
        if (m.state === "launch_failed" || (m.state === "destroyed" && want !== "destroyed"))
          throw new ApiError(400, `machine ${m.id} is ${m.state}`);
        const left = deadline - Date.now();
        if (left <= 0)
          throw new ApiError(408, `deadline_exceeded: timeout waiting for machine to be ${want}`);
        await new Promise<void>((r) => {
          const done = () => {
            clearTimeout(t);
            waiters.delete(done);
            r();
          };
          const t = setTimeout(done, left);
          waiters.add(done);
        });
      }
      return send(res, 200, { ok: true });
    }
    if (action === "exec" && method === "POST") {
      const body = await readJson(req);
      bodies.push({
        path: url.pathname,
        body: {
          ...body,
          stdin: body.stdin === undefined ? undefined : `<${String(body.stdin).length} chars>`,
        },
      });
      return send(res, 200, await exec(m, body));
    }
    if (action === "stop" && method === "POST") {
      checkLease(req, m);
      if (m.state === "started" || m.state === "starting" || m.state === "suspended") await halt(m);
      return send(res, 200, { ok: true });
    }
    if (action === "suspend" && method === "POST") {
      checkLease(req, m);
      const problem = enforceGuest ? suspendProblem(m.config) : null;
      if (problem) throw new ApiError(412, `failed_precondition: ${problem}`);
      if (m.state === "started") {
        setState(m, "suspending");
        await sleep(transitionMs);
        if ((m.state as FlyMachineState) === "suspending") setState(m, "suspended");
      }
      return send(res, 200, { ok: true });
    }
    if (action === "start" && method === "POST") {
      checkLease(req, m);
      const previous = m.state;
      if (previous === "stopped" || previous === "suspended" || previous === "created") {
        if (m.session) setState(m, "started");
        else void boot(m);
      } else if (previous !== "started" && previous !== "starting")
        throw new ApiError(
          412,
          `failed_precondition: machine ${m.id} cannot be started from state ${previous}`,
        );
      // fly-go MachineStartResponse: {message, status, previous_state}.
      return send(res, 200, { message: "", status: "success", previous_state: previous });
    }
    if (action === "lease") {
      if (method === "POST") {
        const body = await readJson(req);
        if (
          m.lease &&
          m.lease.expires_at * 1000 > Date.now() &&
          req.headers["fly-machine-lease-nonce"] !== m.lease.nonce
        ) {
          throw new ApiError(409, `machine ${m.id} already has a lease`);
        }
        const ttl = typeof body.ttl === "number" ? body.ttl : 30;
        m.lease = {
          nonce: randomBytes(8).toString("hex"),
          expires_at: Math.floor(Date.now() / 1000) + ttl,
          owner: "roder@example.com",
          description: String(body.description ?? ""),
        };
        return send(res, 200, { status: "success", data: { ...m.lease, version: "1" } });
      }
      if (method === "GET") {
        if (!m.lease) throw new ApiError(404, "no lease");
        return send(res, 200, { status: "success", data: m.lease });
      }
      if (method === "DELETE") {
        if (m.lease && req.headers["fly-machine-lease-nonce"] !== m.lease.nonce)
          throw new ApiError(409, "wrong lease nonce");
        m.lease = undefined;
        return send(res, 200, { ok: true });
      }
    }
    throw new ApiError(404, "not found");
  }

  const serve = serveWithFaults(faults, route, (error, res) => {
    // Fly's error body: {"error": message, "status": code string} (fly-go flaps/flaps_error.go).
    if (error instanceof ApiError)
      send(
        res,
        error.status,
        { error: error.message, status: error.code },
        error.retryAfterS !== undefined ? { "retry-after": String(error.retryAfterS) } : {},
      );
    else send(res, 500, { error: "internal error", status: "unknown" });
  });
  const server = createServer((req, res) => {
    res.on("finish", () =>
      requests.push({
        method: req.method ?? "",
        path: (req.url ?? "").split("?")[0]!,
        status: res.statusCode,
      }),
    );
    serve(req, res);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  const proxy = createFlyAppProxy(machines);
  await new Promise<void>((r) => proxy.listen(0, "127.0.0.1", r));
  const appPort = (proxy.address() as AddressInfo).port;

  return {
    baseUrl: `http://127.0.0.1:${port}/v1`,
    appUrl: `http://127.0.0.1:${appPort}`,
    token,
    machines: () => [...machines.values()].filter((m) => m.state !== "destroyed"),
    volumes: () => [...volumes.values()],
    faults: Object.assign(faults, {
      failNextStart() {
        flags.failNextStart = true;
      },
    }),
    requests,
    bodies,
    get rateLimited() {
      return rateLimited;
    },
    get execTimeouts() {
      return execTimeouts;
    },
    async stopMachine(id: string) {
      const m = machines.get(id);
      if (m && (m.state === "started" || m.state === "starting")) await halt(m);
    },
    async stop() {
      for (const m of machines.values()) {
        m.init = undefined;
        await m.session?.close().catch(() => {});
      }
      server.closeAllConnections();
      proxy.closeAllConnections();
      await Promise.all([
        new Promise<void>((r) => server.close(() => r())),
        new Promise<void>((r) => proxy.close(() => r())),
      ]);
    },
  };
}
