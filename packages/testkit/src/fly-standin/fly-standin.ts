import { randomBytes } from "node:crypto";
import { createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type {
  RemoteRunnerProvider,
  RemoteRunnerSession,
  RunnerCommandHandle,
  RunnerDestination,
} from "@roder/runner-contract";
import { createFaultSwitch, type FaultSwitch } from "../fault/faults.js";

/**
 * A local stand-in of the Fly Machines REST API (`/v1/apps/{app}/machines…`): same paths, bodies, status
 * codes and `{"error": "..."}` shapes, bearer auth, machine states, `wait`, leases, and exec that really
 * runs argv, each machine backed by a session of the injected provider (the local runner in tests).
 */
export interface FlyStandInOptions {
  backend: RemoteRunnerProvider;
  /**
   * The backend destination of each machine (default: unix-local under bwrap with the workspace at /workspace, on
   * this host's network; a machine with a service gets a network namespace of its own, as a Fly machine has, so
   * that two machines' internal ports never meet, and the app's address reaches it through a forwarded port).
   */
  backendDestination?: (machineId: string, config: Record<string, unknown>) => RunnerDestination;
  /**
   * Host directories every machine's image holds, read-only at the same paths (default none): e.g. this
   * repository, so that a machine can run its built CLI as the agent (`node <repo>/packages/cli/dist/bin.js`).
   */
  imageDirs?: string[];
  token?: string;
  /** Time a machine spends in `starting` (default 150 ms). */
  startDelayMs?: number;
  /** Time a machine spends in `stopping`, `suspending` and `destroying` (default 50 ms). */
  transitionDelayMs?: number;
  /**
   * Fly's rate limit: per machine (per app for create and list), per action, `perSecond` requests with bursts of
   * `burst`; beyond it 429 `{"error","status"}` with `Retry-After` (default `{ perSecond: 1, burst: 3 }`).
   * `false` turns it off.
   */
  rateLimit?: { perSecond: number; burst: number } | false;
  /**
   * The API edge's limit on one exec request: held longer, it is answered 408 while the command goes on in the
   * machine (default 30 000 ms). `false` turns it off.
   */
  execRequestLimitMs?: number | false;
  /**
   * Stop then start resets the machine: its backend session is closed at stop (files and processes gone) and
   * rebuilt from the image (config `files` written again) at start (default true). `false`: stop keeps it.
   */
  resetOnStop?: boolean;
  /** How long a destroyed machine still answers GET with `state: "destroyed"` before 404 (default 5000 ms). */
  destroyedLingerMs?: number;
  /**
   * Fly's guest sizes and suspend eligibility: sizes Fly refuses are refused at create (422), suspend of a
   * machine with more than 4 GB, swap or a schedule is refused (412) (default true). `false` accepts anything.
   */
  enforceGuestLimits?: boolean;
}

export type FlyMachineState =
  | "created"
  | "starting"
  | "started"
  | "stopping"
  | "stopped"
  | "suspending"
  | "suspended"
  | "replacing"
  | "destroying"
  | "destroyed"
  | "launch_failed";

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
  /** The machine's init command (`config.init.cmd`), running while it is started. */
  init?: RunnerCommandHandle;
  /** When it was destroyed (ms since epoch): GET answers `destroyed` until `destroyedLingerMs` later, then 404. */
  destroyed_at?: number;
  /** Where the app's address reaches the machine's service (`config.services[0].internal_port`) on this host. */
  serviceUrl?: string;
  /** The output of the machine's init (its last 64 KiB), as `fly logs` shows it. */
  log: string;
  lease?: { nonce: string; expires_at: number; owner: string; description: string };
}

/** A Fly volume (fly-go `Volume`): its files survive the resets of the machine it is mounted in. */
export interface FlyStandInVolume {
  id: string;
  app: string;
  name: string;
  state: "created" | "pending_destroy";
  size_gb: number;
  region: string;
  zone: string;
  encrypted: boolean;
  attached_machine_id: string | null;
  created_at: string;
  /** The files under the mount path, as a tar archive, kept while no machine has them (at stop and destroy). */
  contents?: Uint8Array;
}

export interface FlyStandIn {
  baseUrl: string;
  /** Volumes not deleted. */
  volumes(): FlyStandInVolume[];
  token: string;
  /** Machines not destroyed (leak counting). */
  machines(): FlyStandInMachine[];
  faults: FaultSwitch & {
    /** The next created machine fails to start. */
    failNextStart(): void;
  };
  /** Method, path and status of every request (no bodies, no headers). */
  requests: Array<{ method: string; path: string; status: number }>;
  /** How many requests the rate limit refused (429) so far. */
  readonly rateLimited: number;
  /** How many exec requests were answered 408 because they were held past `execRequestLimitMs`. */
  readonly execTimeouts: number;
  /**
   * The app's public address (`https://{app}.fly.dev` on Fly): Fly's proxy routes a request carrying
   * `fly-force-instance-id: <machine id>` to that machine's service (`config.services[0].internal_port`),
   * others to any started machine with a service; 503 when no machine can take it.
   */
  appUrl: string;
  /** Stops a machine as Fly's platform may (host maintenance, an operator): the next start resets it. */
  stopMachine(id: string): Promise<void>;
  /** Bodies of create and exec requests as received (to check wire shapes; never carries the token). */
  bodies: Array<{ path: string; body: unknown }>;
  stop(): Promise<void>;
}

class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    /** Fly's `status` field: "unknown" unless a documented code applies ("insufficient_capacity"). */
    readonly code = "unknown",
    readonly retryAfterS?: number,
  ) {
    super(message);
  }
}

/** Fly's guest sizes (docs: machines/guides-examples/machine-sizing): a message naming the limit, or null. */
function guestProblem(guest: unknown): string | null {
  if (guest === undefined || guest === null) return null;
  const g = guest as { cpu_kind?: unknown; cpus?: unknown; memory_mb?: unknown };
  const kind = g.cpu_kind ?? "shared";
  if (kind !== "shared" && kind !== "performance")
    return `invalid cpu_kind '${String(kind)}': shared or performance`;
  const cpus = g.cpus ?? 1;
  const allowed = kind === "shared" ? [1, 2, 4, 6, 8] : [1, 2, 4, 6, 8, 10, 12, 14, 16];
  if (typeof cpus !== "number" || !allowed.includes(cpus))
    return `invalid number of ${kind} cpus ${String(cpus)}: one of ${allowed.join(", ")}`;
  const mem = g.memory_mb ?? (kind === "shared" ? 256 * cpus : 2048 * cpus);
  if (typeof mem !== "number" || !Number.isInteger(mem) || mem % 256 !== 0)
    return `invalid memory size ${String(mem)} MB: a multiple of 256 MB`;
  if (kind === "shared" && (mem < 256 * cpus || mem > 2048 * cpus))
    return `invalid memory size ${mem} MB for ${cpus} shared cpu(s): between ${256 * cpus} and ${2048 * cpus} MB`;
  if (kind === "performance" && mem < 2048 * cpus)
    return `invalid memory size ${mem} MB for ${cpus} performance cpu(s): at least ${2048 * cpus} MB`;
  return null;
}

/** Why Fly refuses to suspend a machine of this config (docs: machines/suspend-resume), or null. */
function suspendProblem(config: Record<string, unknown>): string | null {
  const g = (config.guest ?? {}) as {
    cpu_kind?: string;
    cpus?: number;
    memory_mb?: number;
    swap_size_mb?: number;
  };
  const mem = g.memory_mb ?? (g.cpu_kind === "performance" ? 2048 : 256) * (g.cpus ?? 1);
  if (mem > 4096)
    return `machines with more than 4096 MB of memory cannot be suspended (this one has ${mem} MB)`;
  if ((g.swap_size_mb ?? 0) > 0) return "machines with swap cannot be suspended";
  if (config.schedule) return "machines with a schedule cannot be suspended";
  return null;
}

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
  let failNextStart = false;
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

  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

  const servicePort = (m: Pick<FlyStandInMachine, "config">) =>
    (m.config as { services?: Array<{ internal_port?: unknown }> }).services?.[0]?.internal_port;

  /** The machine's volume mounts (`config.mounts`: `{volume, path}`). */
  const mountsOf = (m: Pick<FlyStandInMachine, "config">) =>
    ((m.config as { mounts?: Array<{ volume?: unknown; path?: unknown }> }).mounts ?? []).filter(
      (x): x is { volume: string; path: string } =>
        typeof x.volume === "string" && typeof x.path === "string",
    );

  /**
   * A volume outlives the machine's root filesystem: before the machine is reset (stop) or destroyed, the files
   * under each mount path are kept as the volume's contents (a tar archive made in the machine)...
   */
  async function saveVolumes(m: FlyStandInMachine, session: RemoteRunnerSession): Promise<void> {
    for (const mount of mountsOf(m)) {
      const v = volumes.get(mount.volume);
      if (!v) continue;
      const file = `/tmp/.fly-volume-${v.id}.tar`;
      const r = await session
        .runCommand({
          command_id: `volume-save-${randomBytes(4).toString("hex")}`,
          program: "tar",
          args: ["-C", mount.path, "-cf", file, "."],
        })
        .catch(() => null);
      if (r?.exit_code !== 0) continue;
      v.contents = (await session.readFile({ path: file }).catch(() => null))?.contents;
    }
  }

  /** ...and are there again, under the same path, when the machine boots. */
  async function restoreVolumes(m: FlyStandInMachine, session: RemoteRunnerSession): Promise<void> {
    for (const mount of mountsOf(m)) {
      const v = volumes.get(mount.volume);
      if (!v?.contents) continue;
      const file = `/tmp/.fly-volume-${v.id}.tar`;
      await session.writeFile({ path: file, contents: v.contents });
      const r = await session.runCommand({
        command_id: `volume-restore-${randomBytes(4).toString("hex")}`,
        program: "sh",
        args: ["-c", 'mkdir -p -- "$1" && tar -C "$1" -xpf "$2" && rm -f -- "$2"', "sh", mount.path, file],
      });
      if (r.exit_code !== 0)
        throw new Error(`volume ${v.id} could not be mounted at ${mount.path}: ${r.stderr}`);
    }
  }

  const volumeView = (v: FlyStandInVolume) => ({
    id: v.id,
    name: v.name,
    state: v.state,
    size_gb: v.size_gb,
    region: v.region,
    zone: v.zone,
    encrypted: v.encrypted,
    attached_machine_id: v.attached_machine_id,
    attached_alloc_id: null,
    created_at: v.created_at,
    host_dedication_id: "",
    snapshot_retention: 5,
    auto_backup_enabled: true,
  });

  /** `/v1/apps/{app}/volumes[/{id}]` (fly-go flaps_volumes.go). */
  async function routeVolumes(req: IncomingMessage, res: ServerResponse, app: string, id?: string) {
    const method = req.method ?? "GET";
    if (!id) {
      if (method === "POST") {
        takeToken(`app:${app}:volume_create`);
        const body = await readJson(req);
        bodies.push({ path: `/v1/apps/${app}/volumes`, body });
        if (typeof body.name !== "string" || !/^[a-z0-9_]{1,30}$/.test(body.name))
          throw new ApiError(
            400,
            "invalid volume name: lowercase alphanumeric characters and underscores, at most 30",
          );
        if (typeof body.region !== "string" || !body.region) throw new ApiError(400, "region is required");
        const size = body.size_gb ?? 3;
        if (typeof size !== "number" || !Number.isInteger(size) || size < 1 || size > 500)
          throw new ApiError(400, "size_gb must be a whole number of GB between 1 and 500");
        const v: FlyStandInVolume = {
          id: `vol_${randomBytes(8).toString("hex")}`,
          app,
          name: body.name,
          state: "created",
          size_gb: size,
          region: body.region,
          zone: randomBytes(2).toString("hex"),
          encrypted: body.encrypted !== false,
          attached_machine_id: null,
          created_at: new Date().toISOString(),
        };
        volumes.set(v.id, v);
        return send(res, 200, volumeView(v));
      }
      if (method === "GET") {
        takeToken(`app:${app}:volume_list`);
        return send(res, 200, [...volumes.values()].filter((v) => v.app === app).map(volumeView));
      }
      throw new ApiError(404, "not found");
    }
    takeToken(`volume:${id}:${method}`);
    const v = volumes.get(id);
    if (!v || v.app !== app) throw new ApiError(404, "volume not found");
    if (method === "GET") return send(res, 200, volumeView(v));
    if (method === "DELETE") {
      const holder = v.attached_machine_id ? machines.get(v.attached_machine_id) : undefined;
      if (holder && holder.state !== "destroyed")
        throw new ApiError(
          412,
          `failed_precondition: volume ${v.id} is attached to machine ${holder.id}: destroy the machine first`,
        );
      volumes.delete(v.id);
      v.state = "pending_destroy";
      return send(res, 200, volumeView(v));
    }
    throw new ApiError(404, "not found");
  }

  /** A machine's `config.mounts` at create: each volume exists, is free, and is in the machine's region. */
  function attachVolumes(app: string, machineId: string, region: string, config: Record<string, unknown>) {
    const wanted = mountsOf({ config });
    for (const mount of wanted) {
      const v = volumes.get(mount.volume);
      if (!v || v.app !== app) throw new ApiError(404, `volume ${mount.volume} not found`);
      if (v.attached_machine_id && machines.get(v.attached_machine_id)?.state !== "destroyed")
        throw new ApiError(409, `volume ${v.id} is already attached to machine ${v.attached_machine_id}`);
      if (v.region !== region)
        throw new ApiError(
          422,
          `volume ${v.id} is in region ${v.region}, the machine in ${region}: a volume mounts only in its region`,
        );
      if (!mount.path.startsWith("/")) throw new ApiError(400, `mount path must be absolute: ${mount.path}`);
    }
    for (const mount of wanted) volumes.get(mount.volume)!.attached_machine_id = machineId;
  }

  const setState = (m: FlyStandInMachine, state: FlyMachineState) => {
    m.state = state;
    m.updated_at = new Date().toISOString();
    if (state === "destroyed") m.destroyed_at = Date.now();
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

  /** Boots the machine from its image: a fresh backend session with the config's `files` written. */
  async function boot(m: FlyStandInMachine): Promise<void> {
    setState(m, "starting");
    await sleep(options.startDelayMs ?? 150);
    if (m.state !== "starting") return;
    if (failNextStart) {
      failNextStart = false;
      setState(m, "launch_failed");
      return;
    }
    try {
      const session = await options.backend.createSession(backendDestination(m.id, m.config));
      if ((m.state as FlyMachineState) !== "starting") {
        await session.close().catch(() => {});
        return;
      }
      m.session = session;
      await restoreVolumes(m, session);
      const port = servicePort(m);
      m.serviceUrl =
        typeof port === "number"
          ? ((await session.exposePort({ port })).url ?? `http://127.0.0.1:${port}`).replace(/\/+$/, "")
          : undefined;
      const files = (
        (m.config as { files?: Array<{ guest_path: string; raw_value?: string }> }).files ?? []
      ).filter((f) => f.raw_value !== undefined);
      for (const f of files)
        await session.writeFile({
          path: f.guest_path,
          contents: new Uint8Array(Buffer.from(f.raw_value!, "base64")),
        });
      await startInit(m, session);
      if ((m.state as FlyMachineState) === "starting") setState(m, "started");
    } catch {
      setState(m, "launch_failed");
    }
  }

  /**
   * Runs `config.init.cmd` with `config.env` in the machine while it is up. With restart policy "no" (the
   * default here), a machine whose init command exits stops, as on Fly.
   */
  async function startInit(m: FlyStandInMachine, session: RemoteRunnerSession): Promise<void> {
    const init = (m.config as { init?: { cmd?: unknown } }).init?.cmd;
    if (!Array.isArray(init) || init.length === 0 || !session.startCommand) return;
    const env = Object.entries((m.config as { env?: Record<string, unknown> }).env ?? {}).map(
      ([k, v]) => [k, String(v)] as [string, string],
    );
    const handle = await session.startCommand({
      command_id: `init-${m.id}`,
      program: String(init[0]),
      args: init.slice(1).map(String),
      env,
    });
    m.init = handle;
    void (async () => {
      for await (const chunk of handle.output) {
        // The init's output is the machine's log (its last 64 KiB kept, as `fly logs` would show it).
        m.log = (m.log + new TextDecoder().decode(chunk.data)).slice(-64 * 1024);
      }
      await handle.wait().catch(() => undefined);
      const policy = (m.config as { restart?: { policy?: string } }).restart?.policy ?? "no";
      if (m.init === handle && m.session === session && m.state === "started" && policy === "no") {
        m.init = undefined;
        await halt(m);
      }
    })();
  }

  /** Stop: the VM halts; with `resetOnStop` its root filesystem and processes are gone (rebuilt at start). */
  async function halt(m: FlyStandInMachine): Promise<void> {
    setState(m, "stopping");
    const init = m.init;
    m.init = undefined;
    await init?.kill().catch(() => false);
    await sleep(transitionMs);
    if (resetOnStop) {
      const s = m.session;
      m.session = undefined;
      if (s) await saveVolumes(m, s);
      await s?.close().catch(() => {});
    }
    if (m.state === "stopping") setState(m, "stopped");
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

  const send = (
    res: ServerResponse,
    status: number,
    body?: unknown,
    headers: Record<string, string> = {},
  ) => {
    if (res.headersSent || res.destroyed) return;
    if (body === undefined) {
      res.writeHead(status, headers).end();
      return;
    }
    const text = JSON.stringify(body);
    res
      .writeHead(status, {
        ...headers,
        "content-type": "application/json",
        "content-length": String(Buffer.byteLength(text)),
      })
      .end(text);
  };

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

  async function exec(m: FlyStandInMachine, body: Record<string, unknown>) {
    if (m.state !== "started" || !m.session)
      throw new ApiError(412, `failed_precondition: machine ${m.id} is not started (state ${m.state})`);
    const session = m.session;
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
      await session.writeFile({ path: stdinFile, contents: new TextEncoder().encode(body.stdin) });
      argv = [
        "/bin/sh",
        "-c",
        'f="$1"; shift; exec "$@" < "$f"',
        "sh",
        `${(session.state().metadata as { workspace_root: string }).workspace_root}/${stdinFile}`,
        ...command,
      ];
    }
    const run = (async () => {
      try {
        const r = await session.runCommand({
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
          await session
            .runCommand({ command_id: "rm", program: "rm", args: ["-f", stdinFile] })
            .catch(() => {});
      }
    })();
    if (execLimitMs === false) return run;
    // The API edge gives up on a request held too long; the command goes on in the machine.
    run.catch(() => {});
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        run,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => {
            execTimeouts += 1;
            reject(new ApiError(408, "deadline_exceeded: request timed out"));
          }, execLimitMs);
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

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
        // Fly's error body: {"error": message, "status": code string} (fly-go flaps/flaps_error.go).
        if (error instanceof ApiError)
          send(
            res,
            error.status,
            { error: error.message, status: error.code },
            error.retryAfterS !== undefined ? { "retry-after": String(error.retryAfterS) } : {},
          );
        else send(res, 500, { error: "internal error", status: "unknown" });
      }
    })();
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;

  // The app's public address: Fly's proxy, routing by `fly-force-instance-id` to a machine's service.
  let roundRobin = 0;
  const proxy = createServer((req, res) => {
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
        failNextStart = true;
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
