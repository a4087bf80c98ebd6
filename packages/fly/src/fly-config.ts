import { parseProviderConfig } from "@roder/runner-contract";
import { z } from "zod";

/** `destination.config` of the Fly provider. Persisted with the thread: the token comes from FLY_API_TOKEN. */
export const FlyDestinationConfigSchema = z
  .object({
    /** The Fly app the machines belong to (created beforehand: `fly apps create`). */
    app: z
      .string()
      .regex(/^[a-z0-9][a-z0-9-]{1,62}$/, "a Fly app name: lowercase letters, digits and hyphens"),
    /** Image with a shell, coreutils (base64, realpath, timeout) and a long-running command. */
    image: z.string().min(1),
    region: z.string().min(2).optional(),
    /**
     * The machine's size, checked against Fly's documented sizes before anything is created: cpu_kind shared
     * (cpus 1, 2, 4, 6, 8; 256–2048 MB per CPU) or performance (cpus 1–16 as 1, 2, 4, …, 16; at least 2048 MB
     * per CPU); memory in 256 MB steps.
     */
    guest: z
      .object({
        cpu_kind: z.enum(["shared", "performance"]).default("shared"),
        cpus: z.number().int().min(1).max(16).default(1),
        memory_mb: z.number().int().min(256).max(262_144).default(1024),
        swap_size_mb: z.number().int().min(0).optional(),
      })
      .strict()
      .optional(),
    /** Fly's `schedule` (the machine is started on it and stopped in between); a scheduled machine cannot suspend. */
    schedule: z.enum(["hourly", "daily", "weekly", "monthly"]).optional(),
    /**
     * `true`: the session must be able to `pause()` (Fly suspend): refused at validation when the guest is not
     * eligible (more than 4096 MB, swap, a schedule). `false`: `pause()` is refused. Default: allowed when eligible.
     */
    suspend: z.boolean().optional(),
    /** Command that keeps the machine running (the image's own by default). */
    cmd: z.array(z.string()).optional(),
    /** Workspace root inside the machine. */
    workspace_root: z.string().startsWith("/").default("/workspace"),
    /** Public URL of a port: `{app}` and `{port}` are replaced. The app needs a service for that internal port. */
    public_url_template: z.string().default("https://{app}.fly.dev"),
    /** Upper bound for create + start (ms). */
    create_timeout_ms: z.number().int().positive().default(180_000),
    /** Time limit for commands that give no `timeout_ms` (seconds; default: none). */
    default_exec_timeout_s: z.number().int().positive().optional(),
    /**
     * Longest time one exec request is held open (seconds): a command still running then is followed by further
     * short execs. Keep it under the API edge's limit (users report 408 after about 30 s; default 20).
     */
    exec_hold_s: z.number().min(0.5).max(55).default(20),
    /** Expiry tag written on each machine (for the sweeper), seconds from creation. */
    ttl_seconds: z
      .number()
      .int()
      .positive()
      .default(24 * 3600),
    artifacts: z.unknown().optional(),
    /**
     * Bucket mounts run rclone inside the machine, with the credentials there: refused unless this says so —
     * `true` for every mount, or the names of the mounts allowed (see @roder/runner-storage).
     */
    allow_credentials_in_sandbox: z.union([z.boolean(), z.array(z.string().min(1))]).optional(),
    /**
     * `agent`: the machine runs `roder-runner serve` and the provider speaks the HTTP runner protocol to it through
     * the app's public address (`fly-force-instance-id`): no exec in the loop. `exec`: any image, every operation
     * an exec of the Machines API. Default: `agent` when `image_has_agent` is true, else `exec`.
     */
    mode: z.enum(["agent", "exec"]).optional(),
    /** The image has the agent (`roder-runner` on PATH, Node 20+): see packages/fly/agent/Dockerfile. */
    image_has_agent: z.boolean().default(false),
    /** The program that starts the agent in the machine (`serve` and its flags follow). */
    agent_command: z
      .array(z.string().min(1))
      .min(1)
      .default(() => ["roder-runner"]),
    /** The agent's internal port (the app gets a service on it). */
    agent_port: z.number().int().min(1).max(65535).default(8080),
    /** The app's public address, `{app}` replaced: the provider reaches the agent there (agent mode). */
    agent_url: z
      .string()
      .regex(/^https?:\/\/[^/]/, "an http(s) URL")
      .default("https://{app}.fly.dev"),
    /**
     * A Fly volume created with the machine and mounted at `workspace_root` (deleted at close): the workspace
     * then survives a stop/start, which rebuilds the machine's root filesystem from its image. Needs `region`.
     */
    volume: z
      .object({
        /** 1–500 GB (Fly's bounds). */
        size_gb: z.number().int().min(1).max(500).default(1),
        /** Fly volume names: lowercase letters, digits and underscores, at most 30 characters. */
        name: z
          .string()
          .regex(/^[a-z0-9_]{1,30}$/, "lowercase letters, digits and underscores, at most 30 characters")
          .default("roder_workspace"),
      })
      .strict()
      .optional(),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.volume && !c.region)
      ctx.addIssue({
        code: "custom",
        path: ["region"],
        message: "a Fly volume lives in one region: set region when volume is set",
      });
    const size = guestSizeProblem(c.guest);
    if (size) ctx.addIssue({ code: "custom", path: ["guest"], message: size });
    if (c.suspend === true) {
      const why = suspendProblem(c);
      if (why) ctx.addIssue({ code: "custom", path: ["suspend"], message: why });
    }
  });
export type FlyDestinationConfig = z.infer<typeof FlyDestinationConfigSchema>;

/** The mode a config runs in: its `mode`, else `agent` when the image has the agent, else `exec`. */
export function flyMode(c: Pick<FlyDestinationConfig, "mode" | "image_has_agent">): "agent" | "exec" {
  return c.mode ?? (c.image_has_agent ? "agent" : "exec");
}

const SHARED_CPUS = [1, 2, 4, 6, 8];
const PERFORMANCE_CPUS = [1, 2, 4, 6, 8, 10, 12, 14, 16];

/** Fly's guest sizes (docs: machines/guides-examples/machine-sizing): what is wrong, naming the limit, or null. */
export function guestSizeProblem(guest: FlyDestinationConfig["guest"] | undefined): string | null {
  if (!guest) return null;
  const { cpu_kind: kind, cpus, memory_mb: mem } = guest;
  const allowed = kind === "shared" ? SHARED_CPUS : PERFORMANCE_CPUS;
  if (!allowed.includes(cpus))
    return `Fly offers ${kind} machines with ${allowed.join(", ")} CPUs, not ${cpus}`;
  if (mem % 256 !== 0) return `Fly sizes memory in steps of 256 MB; ${mem} MB is not one`;
  if (kind === "shared" && (mem < 256 * cpus || mem > 2048 * cpus))
    return `a shared machine has 256–2048 MB per CPU: ${cpus} CPU(s) take ${256 * cpus}–${2048 * cpus} MB, not ${mem}`;
  if (kind === "performance" && mem < 2048 * cpus)
    return `a performance machine has at least 2048 MB per CPU: ${cpus} CPU(s) take at least ${2048 * cpus} MB, not ${mem}`;
  return null;
}

/** Why Fly would refuse to suspend a machine of this config (at most 4096 MB, no swap, no schedule), or null. */
export function suspendProblem(c: Pick<FlyDestinationConfig, "guest" | "schedule">): string | null {
  // Without a guest, Fly's default is shared-cpu-1x with 256 MB.
  const mem = c.guest?.memory_mb ?? 256;
  if (mem > 4096)
    return `Fly suspends only machines with at most 4096 MB of memory (this guest has ${mem} MB)`;
  if ((c.guest?.swap_size_mb ?? 0) > 0) return "Fly does not suspend machines with swap (guest.swap_size_mb)";
  if (c.schedule) return `Fly does not suspend machines with a schedule (schedule: ${c.schedule})`;
  return null;
}

export function parseFlyConfig(config: unknown): FlyDestinationConfig {
  return parseProviderConfig(FlyDestinationConfigSchema, config, "fly", {
    // A switch (true or mount names) whose name mentions credentials, not a credential.
    allowKeys: ["allow_credentials_in_sandbox"],
    hint: "the Fly token comes from the FLY_API_TOKEN environment variable",
  });
}
