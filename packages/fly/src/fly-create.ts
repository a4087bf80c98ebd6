import { randomBytes } from "node:crypto";
import { promises as fs } from "node:fs";
import { posix } from "node:path";
import {
  CancelledError,
  checkProviderId,
  confinePath,
  type EnvSource,
  InvalidDestinationConfigError,
  parseDestinationInput,
  type RunnerCallOptions,
  type RunnerDestination,
  type RunnerDestinationInput,
  RunnerError,
} from "@roder/runner-contract";
import { checkSandboxDestination, manifestSourceFiles, mountManifestInSandbox } from "@roder/runner-storage";
import {
  AGENT_TOKEN_ENV,
  agentClient,
  agentDestination,
  agentInit,
  agentServices,
  agentToken,
  waitAgent,
} from "./fly-agent.js";
import { FlyAgentSession } from "./fly-agent-session.js";
import type { FlyApi, FlyMachine } from "./fly-api.js";
import { type FlyDestinationConfig, flyMode, parseFlyConfig } from "./fly-config.js";
import { destroyMachine, machineDown, waitStarted } from "./fly-machine-ops.js";
import type { FlyProviderSettings } from "./fly-provider.js";
import { MARK } from "./fly-scripts.js";
import { FlySession, type FlySessionTuning } from "./fly-session.js";
import { createVolume, deleteVolume, type FlyVolume, volumeMounts } from "./fly-volumes.js";

/** What creating and resuming sessions need of the provider (see createFlyProvider). */
export interface FlyProviderContext {
  settings: FlyProviderSettings;
  /** The environment with the resolver's secrets laid over it. */
  env: () => EnvSource;
  /** Asks the resolver for every secret ref found in what it is given (see the contract's secretEnvironment). */
  prime: (...sources: unknown[]) => Promise<void>;
  /** A Machines API client on the provider's one credential. */
  api: () => FlyApi;
  owner: string;
  tuning: FlySessionTuning;
  /** The agent token's secret (agent mode). */
  agentSecret: () => Promise<string>;
}

/** A destination checked for Fly before anything is created: config, mode, mounts, manifest targets. */
export function validateFlyDestination(
  destination: RunnerDestinationInput,
  env: EnvSource,
): { d: RunnerDestination; config: FlyDestinationConfig } {
  const d = parseDestinationInput(destination, "fly");
  checkProviderId("fly", "destination", d.provider_id);
  const config = parseFlyConfig(d.config);
  if (flyMode(config) === "agent" && config.cmd)
    throw new InvalidDestinationConfigError({
      providerId: "fly",
      message:
        "cmd: in agent mode the machine runs the agent (agent_command serve …); set mode 'exec' to run cmd",
    });
  // Artifacts bucket, mounts and manifest targets, as every sandbox provider checks them, before a machine is paid for.
  checkSandboxDestination("fly", d, config, env);
  return { d, config };
}

/** The manifest's files: in the machine config (exec mode), or written through the agent once it runs. */
async function manifestFiles(d: RunnerDestination, config: FlyDestinationConfig, agent: boolean) {
  const files: Array<{ guest_path: string; raw_value: string }> = [];
  const entryFiles: Array<{ rel: string; abs: string }> = [];
  for (const e of d.default_manifest.entries) {
    const target = confinePath(e.target, { root: config.workspace_root, access: "write" });
    for (const f of await manifestSourceFiles(e.source).catch((err) => {
      throw new InvalidDestinationConfigError(
        { providerId: "fly", message: `manifest entry source '${e.source}' cannot be read` },
        { cause: err },
      );
    })) {
      const guest = f.rel ? `${target}/${f.rel}` : target;
      if (agent) entryFiles.push({ rel: posix.relative(config.workspace_root, guest), abs: f.abs });
      else files.push({ guest_path: guest, raw_value: (await fs.readFile(f.abs)).toString("base64") });
    }
  }
  return { files, entryFiles };
}

/** The create-machine request: image, init (the agent or `cmd`), owner tags for the sweeper, files, volume. */
function machineBody(
  ctx: FlyProviderContext,
  d: RunnerDestination,
  config: FlyDestinationConfig,
  o: { now: number; agent: string | undefined; files: unknown[]; volume: FlyVolume | undefined },
) {
  const { agent, volume } = o;
  return {
    ...(config.region ? { region: config.region } : {}),
    config: {
      image: config.image,
      ...(config.guest ? { guest: config.guest } : {}),
      ...(agent
        ? {
            init: { cmd: agentInit(config) },
            env: { [AGENT_TOKEN_ENV]: agent },
            services: agentServices(config),
          }
        : config.cmd
          ? { init: { cmd: config.cmd } }
          : {}),
      metadata: {
        roder_owner: ctx.owner,
        roder_expires_at: new Date(o.now + config.ttl_seconds * 1000).toISOString(),
        roder_destination: d.id,
        ...(volume ? { roder_volume: volume.id } : {}),
      },
      restart: { policy: "no" },
      auto_destroy: false,
      ...(o.files.length ? { files: o.files } : {}),
      ...(volume ? { mounts: volumeMounts(config, volume.id) } : {}),
    },
  };
}

/** Creates the machine (and its volume), waits for it, and hands out the session of its mode. */
export async function createFlySession(
  ctx: FlyProviderContext,
  d: RunnerDestination,
  config: FlyDestinationConfig,
  options?: RunnerCallOptions,
): Promise<FlySession | FlyAgentSession> {
  const mode = flyMode(config);
  const a = ctx.api();
  const { files, entryFiles } = await manifestFiles(d, config, mode === "agent");
  const nonce = mode === "agent" ? randomBytes(16).toString("hex") : undefined;
  // Derived before anything is created: a missing secret fails here.
  const agent = nonce ? agentToken(await ctx.agentSecret(), config.app, nonce) : undefined;
  if (options?.signal?.aborted) throw new CancelledError({ operation: "create session" });
  const now = Date.now();
  const volume: FlyVolume | undefined = config.volume
    ? await createVolume(a, config, options?.signal)
    : undefined;
  const body = machineBody(ctx, d, config, { now, agent, files, volume });
  // The create request itself is not aborted: a machine Fly made after the client hung up would be left
  // with no one knowing its id. An abort is honoured as soon as the answer is in (and destroys it).
  let machine: FlyMachine;
  try {
    machine = await a.call<FlyMachine>("POST", `/apps/${config.app}/machines`, {
      body,
      idempotent: false,
      operation: "create machine",
    });
  } catch (error) {
    if (volume) await deleteVolume(a, config.app, volume.id, undefined).catch(() => {});
    throw error;
  }
  const deadline = now + config.create_timeout_ms;
  const made = { a, d, config, machine, volume, deadline };
  try {
    await waitStarted(a, config, machine.id, deadline, options?.signal);
    if (agent && nonce)
      return await startAgentSession(ctx, made, { token: agent, nonce, entryFiles }, options);
    return await startExecSession(ctx, made, options);
  } catch (error) {
    // A failed or aborted create destroys what it started: nothing is left running and billing.
    await destroyMachine(a, config.app, machine.id).catch(() => {});
    if (volume) await deleteVolume(a, config.app, volume.id, machine.id).catch(() => {});
    throw error;
  }
}

/** A machine just created and started. */
interface MadeMachine {
  a: FlyApi;
  d: RunnerDestination;
  config: FlyDestinationConfig;
  machine: FlyMachine;
  volume: FlyVolume | undefined;
  deadline: number;
}

/** Agent mode: waits for the agent, opens a session on it, then writes the manifest and mounts through it. */
async function startAgentSession(
  ctx: FlyProviderContext,
  { a, d, config, machine, volume, deadline }: MadeMachine,
  agent: { token: string; nonce: string; entryFiles: Array<{ rel: string; abs: string }> },
  options?: RunnerCallOptions,
): Promise<FlyAgentSession> {
  const fetch = ctx.settings.fetch ?? globalThis.fetch;
  await waitAgent({
    config,
    machineId: machine.id,
    token: agent.token,
    fetch,
    deadline,
    signal: options?.signal,
    machineDown: () => machineDown(a, config, machine.id),
  });
  const inner = await agentClient({
    config,
    machineId: machine.id,
    token: agent.token,
    fetch,
    onRetry: ctx.settings.onRetry,
  }).createSession(agentDestination(config, d.id), options);
  const session = new FlyAgentSession(a, inner, {
    machineId: machine.id,
    destinationId: d.id,
    config,
    env: ctx.env() as Record<string, string | undefined>,
    nonce: agent.nonce,
    volumeId: volume?.id,
    mounted: [],
  });
  try {
    for (const f of agent.entryFiles)
      await session.writeFile(
        { path: f.rel || ".", contents: new Uint8Array(await fs.readFile(f.abs)) },
        options,
      );
    for (const e of d.default_manifest.entries.filter((x) => !x.writable)) {
      const target = confinePath(e.target, { root: config.workspace_root, access: "write" });
      await session.runCommand(
        {
          command_id: `protect-${randomBytes(4).toString("hex")}`,
          program: "chmod",
          args: ["-R", "a-w", "--", posix.relative(config.workspace_root, target) || "."],
        },
        options,
      );
    }
    await mountManifest(ctx, session, d, config, session.root, options);
  } catch (error) {
    await inner.close().catch(() => {});
    throw error;
  }
  return session;
}

/** Exec mode: the workspace and its marker, read-only manifest entries, mounts, all through execs. */
async function startExecSession(
  ctx: FlyProviderContext,
  { a, d, config, machine, volume }: MadeMachine,
  options?: RunnerCallOptions,
): Promise<FlySession> {
  const marker = randomBytes(12).toString("hex");
  const session = new FlySession(a, {
    machineId: machine.id,
    destinationId: d.id,
    config,
    env: ctx.env() as Record<string, string | undefined>,
    mounted: [],
    marker,
    tuning: ctx.tuning,
    ...(volume ? { volumeId: volume.id } : {}),
  });
  // The workspace and its marker: a machine that was stopped and started again is rebuilt from its image,
  // and resumeSession tells that from the marker being gone (kept when the workspace is on a volume).
  const prep = await session.exec(["/bin/sh", "-c", MARK, "roder-mark", config.workspace_root, marker], {
    timeoutS: 30,
    signal: options?.signal,
    operation: "prepare workspace",
  });
  if ((prep.exit_code ?? 0) !== 0)
    throw new RunnerError(
      "create_failed",
      `could not create ${config.workspace_root} in the machine: ${prep.stderr ?? ""}`,
    );
  for (const e of d.default_manifest.entries.filter((x) => !x.writable)) {
    const target = confinePath(e.target, { root: config.workspace_root, access: "write" });
    await session.exec(["chmod", "-R", "a-w", "--", target], {
      timeoutS: 30,
      signal: options?.signal,
      operation: "protect manifest entry",
    });
  }
  await mountManifest(ctx, session, d, config, config.workspace_root, options);
  return session;
}

/** The manifest's bucket mounts, made in the machine (rclone + FUSE); an abort meanwhile fails the create. */
async function mountManifest(
  ctx: FlyProviderContext,
  session: FlySession | FlyAgentSession,
  d: RunnerDestination,
  config: FlyDestinationConfig,
  workspaceRoot: string,
  options?: RunnerCallOptions,
): Promise<void> {
  session.info.mounted.push(
    ...(await mountManifestInSandbox(session, {
      providerId: "fly",
      mounts: d.default_manifest.mounts,
      workspaceRoot,
      env: ctx.env(),
      allowCredentialsInSandbox: config.allow_credentials_in_sandbox,
      ...(options?.signal ? { signal: options.signal } : {}),
    })),
  );
  if (options?.signal?.aborted) throw new CancelledError({ operation: "create session" });
}
