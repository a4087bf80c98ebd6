import { randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { RemoteRunnerProvider, RemoteRunnerSession, RunnerDestination } from "@roder/runner-contract";
import { createFaultSwitch, type FaultSwitch } from "../fault/faults.js";

/**
 * A local stand-in of the Fly Machines REST API (`/v1/apps/{app}/machines…`): same paths, bodies, status
 * codes and `{"error": "..."}` shapes, bearer auth, machine states, `wait`, leases, and exec that really
 * runs argv, each machine backed by a session of the injected provider (the local runner in tests).
 */
export interface FlyStandInOptions {
  backend: RemoteRunnerProvider;
  /** The backend destination of each machine (default: unix-local under bwrap with the workspace at /workspace). */
  backendDestination?: (machineId: string) => RunnerDestination;
  token?: string;
  /** Time a machine spends in `starting` (default 150 ms). */
  startDelayMs?: number;
}

export type FlyMachineState =
  | "created"
  | "starting"
  | "started"
  | "stopping"
  | "stopped"
  | "suspended"
  | "destroying"
  | "destroyed"
  | "failed";

export interface FlyStandInMachine {
  id: string;
  app: string;
  name: string;
  state: FlyMachineState;
  region: string;
  instance_id: string;
  config: Record<string, unknown>;
  created_at: string;
  updated_at: string;
  session?: RemoteRunnerSession;
  lease?: { nonce: string; expires_at: number; owner: string; description: string };
}

export interface FlyStandIn {
  baseUrl: string;
  token: string;
  /** Machines not destroyed (leak counting). */
  machines(): FlyStandInMachine[];
  faults: FaultSwitch & {
    /** The next created machine fails to start. */
    failNextStart(): void;
  };
  /** Method, path and status of every request (no bodies, no headers). */
  requests: Array<{ method: string; path: string; status: number }>;
  /** Bodies of create and exec requests as received (to check wire shapes; never carries the token). */
  bodies: Array<{ path: string; body: unknown }>;
  stop(): Promise<void>;
}

class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export async function startFlyStandIn(options: FlyStandInOptions): Promise<FlyStandIn> {
  const token = options.token ?? `fly-standin-${randomBytes(12).toString("hex")}`;
  const machines = new Map<string, FlyStandInMachine>();
  const requests: FlyStandIn["requests"] = [];
  const bodies: FlyStandIn["bodies"] = [];
  const faults = createFaultSwitch((status) =>
    JSON.stringify({ error: status === 429 ? "rate limited" : "internal error" }),
  );
  let failNextStart = false;
  const waiters = new Set<() => void>();
  const notify = () => {
    for (const w of [...waiters]) w();
  };
  const backendDestination =
    options.backendDestination ??
    ((id: string) => ({
      id: `fly-${id}`,
      provider_id: options.backend.id,
      config: { isolation: "bwrap", workspace_path: "/workspace", bwrap_unshare_pid: false },
      default_manifest: { entries: [], mounts: [] },
    }));

  const setState = (m: FlyStandInMachine, state: FlyMachineState) => {
    m.state = state;
    m.updated_at = new Date().toISOString();
    notify();
  };

  const view = (m: FlyStandInMachine) => ({
    id: m.id,
    name: m.name,
    state: m.state,
    region: m.region,
    instance_id: m.instance_id,
    private_ip: "fdaa::1",
    config: m.config,
    image_ref: {
      registry: "registry-1.docker.io",
      repository: String((m.config as { image?: string }).image ?? ""),
      tag: "latest",
    },
    created_at: m.created_at,
    updated_at: m.updated_at,
    events: [],
  });

  async function boot(m: FlyStandInMachine): Promise<void> {
    setState(m, "starting");
    await new Promise((r) => setTimeout(r, options.startDelayMs ?? 150));
    if (m.state !== "starting") return;
    if (failNextStart) {
      failNextStart = false;
      setState(m, "failed");
      return;
    }
    try {
      m.session = await options.backend.createSession(backendDestination(m.id));
      const files = (
        (m.config as { files?: Array<{ guest_path: string; raw_value?: string }> }).files ?? []
      ).filter((f) => f.raw_value !== undefined);
      for (const f of files)
        await m.session.writeFile({
          path: f.guest_path,
          contents: new Uint8Array(Buffer.from(f.raw_value!, "base64")),
        });
      if ((m.state as FlyMachineState) === "starting") setState(m, "started");
    } catch {
      setState(m, "failed");
    }
  }

  async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString("utf8");
    if (!text) return {};
    try {
      return JSON.parse(text) as Record<string, unknown>;
    } catch {
      throw new ApiError(400, "invalid JSON body");
    }
  }

  const send = (res: ServerResponse, status: number, body?: unknown) => {
    if (body === undefined) {
      res.writeHead(status).end();
      return;
    }
    const text = JSON.stringify(body);
    res
      .writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) })
      .end(text);
  };

  const machine = (app: string, id: string) => {
    const m = machines.get(id);
    if (!m || m.app !== app || m.state === "destroyed") throw new ApiError(404, "machine not found");
    return m;
  };

  const checkLease = (req: IncomingMessage, m: FlyStandInMachine) => {
    if (m.lease && m.lease.expires_at * 1000 > Date.now()) {
      const nonce = req.headers["fly-machine-lease-nonce"];
      if (nonce !== m.lease.nonce) throw new ApiError(409, `machine ${m.id} is leased by ${m.lease.owner}`);
    }
  };

  async function exec(m: FlyStandInMachine, body: Record<string, unknown>) {
    if (m.state !== "started" || !m.session)
      throw new ApiError(412, `machine ${m.id} is not started (state ${m.state})`);
    const command = Array.isArray(body.command)
      ? (body.command as string[])
      : typeof body.cmd === "string"
        ? ["/bin/sh", "-c", body.cmd]
        : null;
    if (!command || command.length === 0 || command.some((a) => typeof a !== "string"))
      throw new ApiError(400, "command is required");
    const timeoutS = typeof body.timeout === "number" && body.timeout > 0 ? body.timeout : 60;
    let argv = command;
    let stdinFile: string | undefined;
    if (typeof body.stdin === "string" && body.stdin.length > 0) {
      // The backend's commands have no stdin: the bytes go to a file the command reads from.
      stdinFile = `.fly-exec-stdin-${randomBytes(6).toString("hex")}`;
      await m.session.writeFile({ path: stdinFile, contents: new TextEncoder().encode(body.stdin) });
      argv = [
        "/bin/sh",
        "-c",
        'f="$1"; shift; exec "$@" < "$f"',
        "sh",
        `${(m.session.state().metadata as { workspace_root: string }).workspace_root}/${stdinFile}`,
        ...command,
      ];
    }
    try {
      const r = await m.session.runCommand({
        command_id: `exec-${randomBytes(6).toString("hex")}`,
        program: argv[0]!,
        args: argv.slice(1),
        timeout_ms: timeoutS * 1000,
      });
      if (r.exit_code === null && /timed out/.test(r.stderr))
        throw new ApiError(408, "deadline_exceeded: exec timed out");
      // Fly omits exit_code when it is 0 (omitempty).
      return {
        ...(r.exit_code ? { exit_code: r.exit_code } : {}),
        ...(r.exit_code === null ? { exit_signal: 9 } : {}),
        stdout: r.stdout,
        stderr: r.stderr,
      };
    } finally {
      if (stdinFile)
        await m.session
          .runCommand({ command_id: "rm", program: "rm", args: ["-f", stdinFile] })
          .catch(() => {});
    }
  }

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://x");
    const parts = url.pathname.split("/").filter(Boolean);
    const method = req.method ?? "GET";
    if (req.headers.authorization !== `Bearer ${token}`) throw new ApiError(401, "unauthorized");
    if (parts[0] !== "v1" || parts[1] !== "apps" || !parts[2] || parts[3] !== "machines")
      throw new ApiError(404, "not found");
    const app = parts[2];
    const id = parts[4];
    const action = parts[5];
    if (!id) {
      if (method === "POST") {
        const body = await readJson(req);
        bodies.push({ path: url.pathname, body });
        const config = body.config as Record<string, unknown> | undefined;
        if (!config || typeof config.image !== "string") throw new ApiError(400, "config.image is required");
        const now = new Date().toISOString();
        const m: FlyStandInMachine = {
          id: randomBytes(7).toString("hex"),
          app,
          name: typeof body.name === "string" ? body.name : `machine-${randomBytes(3).toString("hex")}`,
          state: "created",
          region: typeof body.region === "string" ? body.region : "iad",
          instance_id: randomBytes(10).toString("hex").toUpperCase(),
          config,
          created_at: now,
          updated_at: now,
        };
        machines.set(m.id, m);
        if (body.skip_launch !== true) void boot(m);
        return send(res, 200, view(m));
      }
      if (method === "GET") {
        const filters = [...url.searchParams]
          .filter(([k]) => k.startsWith("metadata."))
          .map(([k, v]) => [k.slice(9), v] as const);
        const list = [...machines.values()].filter(
          (m) =>
            m.app === app &&
            m.state !== "destroyed" &&
            filters.every(([k, v]) => (m.config.metadata as Record<string, string> | undefined)?.[k] === v),
        );
        return send(res, 200, list.map(view));
      }
    }
    if (!id) throw new ApiError(404, "not found");
    const m = machine(app, id);
    if (!action) {
      if (method === "GET") return send(res, 200, view(m));
      if (method === "DELETE") {
        checkLease(req, m);
        if (m.state === "started" && url.searchParams.get("force") !== "true")
          throw new ApiError(412, "machine is running: stop it first or pass force=true");
        setState(m, "destroying");
        await m.session?.close().catch(() => {});
        m.session = undefined;
        setState(m, "destroyed");
        return send(res, 200, { ok: true });
      }
    }
    if (action === "wait" && method === "GET") {
      const want = url.searchParams.get("state") ?? "started";
      const timeout = Math.min(60, Number(url.searchParams.get("timeout") ?? "60")) * 1000;
      const deadline = Date.now() + timeout;
      while (m.state !== want) {
        if (m.state === "failed" || (m.state === "destroyed" && want !== "destroyed"))
          throw new ApiError(400, `machine ${m.id} is ${m.state}`);
        const left = deadline - Date.now();
        if (left <= 0) throw new ApiError(408, `timeout waiting for machine to be ${want}`);
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
      if (m.state === "started" || m.state === "starting") {
        setState(m, "stopping");
        setState(m, "stopped");
      }
      return send(res, 200, { ok: true });
    }
    if (action === "suspend" && method === "POST") {
      checkLease(req, m);
      if (m.state === "started") setState(m, "suspended");
      return send(res, 200, { ok: true });
    }
    if (action === "start" && method === "POST") {
      checkLease(req, m);
      if (m.state === "stopped" || m.state === "suspended") {
        if (m.session) setState(m, "started");
        else void boot(m);
      }
      return send(res, 200, { previous_state: m.state, migrated: false, new_host: "" });
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

  const server = createServer((req, res) => {
    res.on("finish", () =>
      requests.push({
        method: req.method ?? "",
        path: (req.url ?? "").split("?")[0]!,
        status: res.statusCode,
      }),
    );
    void (async () => {
      if (await faults.apply(req, res)) return;
      try {
        await route(req, res);
      } catch (error) {
        req.resume();
        if (error instanceof ApiError)
          send(res, error.status, {
            error: error.message,
            ...(error.status >= 400 ? { status: error.status } : {}),
          });
        else send(res, 500, { error: "internal error" });
      }
    })();
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;

  return {
    baseUrl: `http://127.0.0.1:${port}/v1`,
    token,
    machines: () => [...machines.values()].filter((m) => m.state !== "destroyed"),
    faults: Object.assign(faults, {
      failNextStart() {
        failNextStart = true;
      },
    }),
    requests,
    bodies,
    async stop() {
      for (const m of machines.values()) await m.session?.close().catch(() => {});
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
