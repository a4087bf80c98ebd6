import { promises as fs } from "node:fs";
import {
  CancelledError,
  confinePath,
  type EnvSource,
  InvalidDestinationConfigError,
  ProviderApiError,
  type RemoteRunnerProvider,
  type RunnerCallOptions,
  type RunnerCapabilities,
  type RunnerDestination,
  RunnerDestinationSchema,
  RunnerError,
  type RunnerMount,
  type RunnerSessionState,
  SessionNotFoundError,
} from "@roder/runner-contract";
import {
  checkSandboxMounts,
  manifestSourceFiles,
  mountManifestInSandbox,
  parseArtifactTarget,
  type SandboxMountRef,
} from "@roder/runner-storage";
import { E2bDestinationConfigSchema, parseE2bConfig } from "./e2b-config.js";
import { mapE2bError } from "./e2b-errors.js";
import { E2bSession } from "./e2b-session.js";

type E2bModule = typeof import("e2b");

export interface E2bProviderSettings {
  /** The `e2b` module (injectable for tests and unusual runtimes); default `await import("e2b")`. */
  sdk?: E2bModule;
  /** Env variable of the API key (default `E2B_API_KEY`). Never from config. */
  apiKeyEnv?: string;
  /** Control-plane URL (default the SDK's, or `E2B_API_URL`). */
  apiUrl?: string;
  /** Sandbox daemon URL for every sandbox (default per sandbox; `E2B_SANDBOX_URL`). */
  sandboxUrl?: string;
  domain?: string;
  env?: EnvSource;
  /** `roder_owner` metadata on every sandbox (for sweepers). Default `roder-runners`. */
  owner?: string;
  requestTimeoutMs?: number;
  /** Retries of a create refused with 429 (default 4, exponential backoff). */
  rateLimitRetries?: number;
}

const CAPABILITIES: RunnerCapabilities = {
  command_exec: true,
  file_read: true,
  file_write: true,
  port_preview: true,
  snapshots: true,
  cancellation: true,
  artifact_export: true,
  // Buckets are mounted inside the sandbox with rclone + FUSE (the template needs rclone and fuse3).
  mounts: { s3: true, gcs: true, r2: true, azure_blob: true, box_storage: true, provider_native: false },
};

export function createE2bProvider(settings: E2bProviderSettings = {}): RemoteRunnerProvider {
  const apiKeyEnv = settings.apiKeyEnv ?? "E2B_API_KEY";
  const env = () => settings.env ?? process.env;
  const owner = settings.owner ?? "roder-runners";
  const sdk = async (): Promise<E2bModule> => settings.sdk ?? ((await import("e2b")) as unknown as E2bModule);
  const conn = (signal?: AbortSignal) => {
    const apiKey = env()[apiKeyEnv];
    if (!apiKey)
      throw new ProviderApiError({
        providerId: "e2b",
        isRetryable: false,
        message: `the E2B API key is missing: set ${apiKeyEnv}`,
      });
    const e = env();
    return {
      apiKey,
      ...((settings.apiUrl ?? e.E2B_API_URL) ? { apiUrl: settings.apiUrl ?? e.E2B_API_URL } : {}),
      ...((settings.sandboxUrl ?? e.E2B_SANDBOX_URL)
        ? { sandboxUrl: settings.sandboxUrl ?? e.E2B_SANDBOX_URL }
        : {}),
      ...((settings.domain ?? e.E2B_DOMAIN) ? { domain: settings.domain ?? e.E2B_DOMAIN } : {}),
      ...(settings.requestTimeoutMs ? { requestTimeoutMs: settings.requestTimeoutMs } : {}),
      ...(signal ? { signal } : {}),
    };
  };
  const mapErr = (error: unknown, operation: string, sandboxId?: string) =>
    mapE2bError(error, { operation, apiKeyEnv, ...(sandboxId ? { sandboxId } : {}) });

  const validate = (destination: RunnerDestination) => {
    const d = RunnerDestinationSchema.parse(destination);
    if (d.provider_id !== "e2b")
      throw new InvalidDestinationConfigError({
        providerId: "e2b",
        message: `destination is for provider '${d.provider_id}'`,
      });
    const config = parseE2bConfig(d.config);
    if (config.artifacts !== undefined) parseArtifactTarget("e2b", config.artifacts);
    checkSandboxMounts("e2b", d.default_manifest.mounts, config.workspace_root, env());
    for (const e of d.default_manifest.entries)
      confinePath(e.target, { root: config.workspace_root, access: "write" });
    return { d, config };
  };

  const wrap = (
    sandbox: import("e2b").Sandbox,
    destinationId: string,
    config: ReturnType<typeof parseE2bConfig>,
    mounts: { mounts: RunnerMount[]; mounted: SandboxMountRef[] } = { mounts: [], mounted: [] },
  ) =>
    new E2bSession(sandbox, {
      destinationId,
      config,
      ...mounts,
      apiKeyEnv,
      env: env() as Record<string, string | undefined>,
      kill: async () => {
        try {
          await sandbox.kill();
        } catch (error) {
          const mapped = mapErr(error, "kill sandbox", sandbox.sandboxId);
          if (!SessionNotFoundError.isInstance(mapped)) throw mapped;
        }
      },
      snapshot: async () => {
        const { Sandbox } = await sdk();
        try {
          const snap = await Sandbox.createSnapshot(sandbox.sandboxId, conn());
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

  async function create(
    d: ReturnType<typeof validate>["d"],
    config: ReturnType<typeof parseE2bConfig>,
    template: string,
    signal?: AbortSignal,
  ) {
    const { Sandbox } = await sdk();
    if (signal?.aborted) throw new CancelledError({ operation: "create session" });
    let sandbox: import("e2b").Sandbox | undefined;
    // Rate limits are retried with backoff (the request was refused, nothing was created); the rest is typed.
    for (let attempt = 0; !sandbox; attempt++) {
      try {
        // The create request itself is not aborted: a sandbox the server made after the client hung up would
        // be left running with no one knowing its id. An abort is honoured as soon as the answer is in (below).
        sandbox = await Sandbox.create(template, {
          ...conn(undefined),
          timeoutMs: config.ttl_seconds * 1000,
          metadata: {
            ...config.metadata,
            roder_owner: owner,
            roder_expires_at: new Date(Date.now() + config.ttl_seconds * 1000).toISOString(),
            roder_destination: d.id,
          },
        });
      } catch (error) {
        const mapped = mapErr(error, "create sandbox");
        if (
          !(ProviderApiError.isInstance(mapped) && mapped.statusCode === 429) ||
          attempt >= (settings.rateLimitRetries ?? 4) ||
          signal?.aborted
        )
          throw mapped;
        await new Promise((r) => setTimeout(r, Math.min(8000, 250 * 2 ** attempt)));
      }
    }
    const session = wrap(sandbox, d.id, config);
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
          env: env(),
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

  return {
    id: "e2b",
    capabilities: () => CAPABILITIES,
    setupHint: () => (env()[apiKeyEnv] ? null : `set ${apiKeyEnv} (your E2B API key)`),
    async validateDestination(destination) {
      validate(destination);
    },
    async createSession(destination, options?: RunnerCallOptions) {
      const { d, config } = validate(destination);
      return create(d, config, config.template, options?.signal);
    },
    async resumeSession(state: RunnerSessionState, options?: RunnerCallOptions) {
      const meta = state.metadata as {
        sandbox_id?: unknown;
        config?: unknown;
        mounts?: RunnerMount[];
        mounted?: SandboxMountRef[];
      } | null;
      if (state.provider_id !== "e2b" || typeof meta?.sandbox_id !== "string")
        throw new RunnerError("invalid_request", "not an e2b session state");
      const config = E2bDestinationConfigSchema.parse(meta.config);
      if (state.snapshot) {
        // A snapshot restores into a new sandbox (Sandbox.create(snapshotId)).
        // The workspace is in the snapshot; bucket mounts are not, and are made again.
        const d = RunnerDestinationSchema.parse({
          id: state.destination_id,
          provider_id: "e2b",
          config: meta.config,
          default_manifest: { entries: [], mounts: meta.mounts ?? [] },
        });
        return create(d, config, state.snapshot.snapshot_id, options?.signal);
      }
      const { Sandbox } = await sdk();
      try {
        // connect() also resumes a paused sandbox.
        const sandbox = await Sandbox.connect(meta.sandbox_id, conn(options?.signal));
        return wrap(sandbox, state.destination_id, config, {
          mounts: meta.mounts ?? [],
          mounted: meta.mounted ?? [],
        });
      } catch (error) {
        throw mapErr(error, "resume session", meta.sandbox_id);
      }
    },
  };
}

/** Default instance: API key from E2B_API_KEY. */
export const e2bProvider = createE2bProvider();
