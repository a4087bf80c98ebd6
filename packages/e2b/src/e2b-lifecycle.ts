import { promises as fs } from "node:fs";
import {
  CancelledError,
  confinePath,
  type EnvSource,
  InvalidDestinationConfigError,
  type RunnerCallOptions,
  type RunnerDestination,
  RunnerDestinationSchema,
  RunnerError,
  type RunnerMount,
  type RunnerSessionState,
  SessionNotFoundError,
} from "@roder/runner-contract";
import { manifestSourceFiles, mountManifestInSandbox, type SandboxMountRef } from "@roder/runner-storage";
import type { Sandbox } from "e2b";
import type { E2bDestinationConfig } from "./e2b-config.js";
import type { E2bConnection, E2bModule } from "./e2b-sdk.js";
import { E2bSession } from "./e2b-session.js";
import { decodeE2bSessionMetadata } from "./e2b-session-metadata.js";
import { checkPlanLimits, planMaxHours } from "./e2b-validate.js";

/** What creating and resuming sessions need of the provider (see createE2bProvider). */
export interface E2bProviderContext {
  /** The environment with the resolver's secrets laid over it. */
  env: () => EnvSource;
  /** Asks the resolver for every secret ref found in what it is given (see the contract's secretEnvironment). */
  prime: (...sources: unknown[]) => Promise<void>;
  owner: string;
  /** Where the API key comes from, as errors name it (never the key). */
  apiKeyEnv: string;
  planMaxTimeoutHours: number | undefined;
  keepAliveIntervalMs: number | undefined;
  sdk: () => Promise<E2bModule>;
  /** An SDK call with the connection options, once more after a refused key that may have rotated. */
  withKey: <T>(call: (c: E2bConnection) => Promise<T>, signal?: AbortSignal) => Promise<T>;
  mapErr: (error: unknown, operation: string, sandboxId?: string, template?: string) => unknown;
  /** 429 (nothing was created) retried with the contract's backoff. */
  retryRateLimited: <T>(operation: string, attempt: () => Promise<T>, signal?: AbortSignal) => Promise<T>;
}

/** The session of a sandbox, with the sandbox's own methods called with the key of each call. */
function wrap(
  ctx: E2bProviderContext,
  sandbox: Sandbox,
  destinationId: string,
  config: E2bDestinationConfig,
  mounts: { mounts: RunnerMount[]; mounted: SandboxMountRef[] } = { mounts: [], mounted: [] },
): E2bSession {
  const { withKey, mapErr } = ctx;
  return new E2bSession(sandbox, {
    destinationId,
    config,
    ...mounts,
    apiKeyEnv: ctx.apiKeyEnv,
    env: ctx.env() as Record<string, string | undefined>,
    ttlMs: config.ttl_seconds * 1000,
    // Never less often than a third of the ttl, whatever the setting: the timeout must move before it passes.
    keepAliveIntervalMs: Math.min(
      ctx.keepAliveIntervalMs ?? Math.min(config.ttl_seconds * 250, 60_000),
      config.ttl_seconds * 333,
    ),
    // The sandbox's own methods with the key of this call (the SDK's bound one may have rotated).
    extend: async (ms: number) => {
      await withKey((c) => sandbox.setTimeout(ms, c));
    },
    pause: async (signal?: AbortSignal) => {
      await withKey((c) => sandbox.pause(c), signal);
    },
    kill: async () => {
      try {
        await withKey((c) => sandbox.kill(c));
      } catch (error) {
        const mapped = mapErr(error, "kill sandbox", sandbox.sandboxId);
        if (!SessionNotFoundError.isInstance(mapped)) throw mapped;
      }
    },
    snapshot: async () => {
      const { Sandbox } = await ctx.sdk();
      try {
        const snap = await withKey((c) => Sandbox.createSnapshot(sandbox.sandboxId, c));
        return {
          provider_id: "e2b",
          snapshot_id: snap.snapshotId,
          metadata: {
            names: snap.names,
            source_sandbox_id: sandbox.sandboxId,
            created_at: new Date().toISOString(),
          },
        };
      } catch (error) {
        throw mapErr(error, "snapshot", sandbox.sandboxId);
      }
    },
  });
}

/**
 * Creates a sandbox from `template` (or a snapshot), then the workspace, the manifest's files and mounts; a failed
 * or aborted create kills what it started.
 */
export async function createE2bSession(
  ctx: E2bProviderContext,
  d: RunnerDestination,
  config: E2bDestinationConfig,
  template: string,
  signal?: AbortSignal,
  /** What `template` names: a snapshot that is gone is not a bad destination. */
  source: "template" | "snapshot" = "template",
): Promise<E2bSession> {
  const { Sandbox } = await ctx.sdk();
  if (signal?.aborted) throw new CancelledError({ operation: "create session" });
  // Rate limits are retried with backoff (the request was refused, nothing was created); the rest is typed.
  const sandbox = await ctx.retryRateLimited(
    "create session",
    async () => {
      try {
        // The create request itself is not aborted: a sandbox the server made after the client hung up would
        // be left running with no one knowing its id. An abort is honoured as soon as the answer is in (below).
        return await ctx.withKey((c) =>
          Sandbox.create(template, {
            ...c,
            timeoutMs: config.ttl_seconds * 1000,
            metadata: {
              ...config.metadata,
              roder_owner: ctx.owner,
              roder_expires_at: new Date(Date.now() + config.ttl_seconds * 1000).toISOString(),
              roder_destination: d.id,
            },
          }),
        );
      } catch (error) {
        const mapped = ctx.mapErr(error, "create sandbox", undefined, template);
        if (source === "snapshot" && InvalidDestinationConfigError.isInstance(mapped))
          throw new RunnerError(
            "not_found",
            `resume session: snapshot '${template}' does not exist on E2B (deleted, or made by another team)`,
            { cause: error },
          );
        throw mapped;
      }
    },
    signal,
  );
  const session = wrap(ctx, sandbox, d.id, config);
  try {
    if (signal?.aborted) throw new CancelledError({ operation: "create session" });
    await sandbox.files.makeDir(config.workspace_root).catch(() => false);
    for (const e of d.default_manifest.entries) {
      const target = confinePath(e.target, { root: config.workspace_root, access: "write" });
      for (const f of await manifestSourceFiles(e.source))
        await session.writeFile({
          path: f.rel ? `${target}/${f.rel}` : target,
          contents: new Uint8Array(await fs.readFile(f.abs)),
        });
      if (!e.writable)
        await session.runCommand({
          command_id: `protect-${Date.now()}`,
          program: "chmod",
          args: ["-R", "a-w", "--", target],
        });
    }
    session.info.mounts = [...d.default_manifest.mounts];
    session.info.mounted.push(
      ...(await mountManifestInSandbox(session, {
        providerId: "e2b",
        mounts: d.default_manifest.mounts,
        workspaceRoot: config.workspace_root,
        env: ctx.env(),
        allowCredentialsInSandbox: config.allow_credentials_in_sandbox,
        ...(signal ? { signal } : {}),
      })),
    );
    if (signal?.aborted) throw new CancelledError({ operation: "create session" });
    return session;
  } catch (error) {
    // A failed or aborted create kills what it started.
    await session.close().catch(() => {});
    throw error;
  }
}

/**
 * Resumes a session from its state in any process: `connect` (which also resumes a paused sandbox), or, for a
 * state that names a snapshot, a new sandbox from it.
 */
export async function resumeE2bSession(
  ctx: E2bProviderContext,
  state: RunnerSessionState,
  options?: RunnerCallOptions,
): Promise<E2bSession> {
  const meta = decodeE2bSessionMetadata(state);
  const { config } = meta;
  // Only ids are taken from the state: values come from the resolver or the environment, never the state.
  await ctx.prime(config, meta.mounts);
  checkPlanLimits(config, planMaxHours(ctx.planMaxTimeoutHours, ctx.env()));
  if (state.snapshot) {
    // A snapshot restores into a new sandbox (Sandbox.create(snapshotId)).
    // The workspace is in the snapshot; bucket mounts are not, and are made again.
    const d = RunnerDestinationSchema.parse({
      id: state.destination_id,
      provider_id: "e2b",
      config,
      default_manifest: { entries: [], mounts: meta.mounts },
    });
    return createE2bSession(ctx, d, config, state.snapshot.snapshot_id, options?.signal, "snapshot");
  }
  const { Sandbox } = await ctx.sdk();
  const sandboxId = meta.sandbox_id;
  // connect() also resumes a paused sandbox. Its timeout is the session's idle time: without one, E2B
  // would give a resumed sandbox 300 s.
  const sandbox = await ctx.retryRateLimited(
    "resume session",
    async () => {
      try {
        return await ctx.withKey(
          (c) => Sandbox.connect(sandboxId, { ...c, timeoutMs: config.ttl_seconds * 1000 }),
          options?.signal,
        );
      } catch (error) {
        throw ctx.mapErr(error, "resume session", sandboxId);
      }
    },
    options?.signal,
  );
  return wrap(ctx, sandbox, state.destination_id, config, { mounts: meta.mounts, mounted: meta.mounted });
}
