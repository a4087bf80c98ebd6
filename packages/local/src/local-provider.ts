import { randomUUID } from "node:crypto";
import { promises as fs } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  type EnvSource,
  parseDestinationInput,
  type RemoteRunnerProvider,
  type RunnerCallOptions,
  type RunnerCapabilities,
  type RunnerDestinationInput,
  RunnerError,
  type RunnerSessionState,
  type RunnerSnapshotRef,
  runnerCapabilities,
  type SecretResolver,
  secretEnvironment,
} from "@roder/runner-contract";
import { planHostMounts } from "@roder/runner-storage";
import { validateLocalDestination } from "./local-destination-checks.js";
import { which } from "./local-isolation.js";
import { HOST_IS_SANDBOX_LIMITS, LOCAL_LIMITS } from "./local-limits.js";
import { resumeLocalSession } from "./local-resume.js";
import type { LocalSession } from "./local-session.js";
import { checkAborted, LOCAL_PROVIDER_ID, type LocalSessionInfo } from "./local-session-info.js";
import { hostPathFor, type LocalProviderContext, newWorkspace, openSession } from "./local-session-setup.js";
import { deleteSnapshotArchive } from "./local-snapshots.js";
import { DEFAULT_OWNER, defaultLocalRoot } from "./local-tags.js";

export interface LocalProviderSettings {
  /** Where secrets and provider settings come from. Default `process.env`. */
  env?: EnvSource;
  /** Default snapshot store (a destination's `snapshot_dir` wins). */
  snapshotDir?: string;
  /** Path of the bubblewrap binary. Default: `bwrap` on PATH. */
  bwrapPath?: string;
  /** Where live sessions are recorded so that `resumeSession` can tell a closed session. */
  registryDir?: string;
  /**
   * Parent of session workspaces when a destination sets no `workspace_dir`; each workspace
   * `<root>/<session_id>` has its owner tag `<root>/<session_id>.session.json` beside it. Default
   * `<tmp>/roder-local-<uid>`.
   */
  root?: string;
  /** Owner written in every session's tag, for `createLocalSweeper`. Default `roder-runners`. */
  owner?: string;
  /**
   * Secrets from a store other than the environment (Vault, a cloud secret manager): asked for the fields of
   * each secret ref the destination names (mount credentials, the artifact store's) when a session is created or
   * resumed; what it leaves out is read from `env` as usual. Values stay in this provider's memory, never in
   * state, errors or commands' environments.
   */
  secrets?: SecretResolver;
  /**
   * The operator's word that this host IS the sandbox (a Fly machine running the agent, a VM or container made
   * for one client): sessions without isolation then address the host's whole view, as an isolated sandbox's
   * do — `readFile`, `writeFile`, the file streams, `exportArtifact` and a command's `cwd` take any absolute path
   * (relative ones against the workspace), and `state().metadata.file_scope` is `sandbox`. Default false: they
   * are confined to the workspace and read roots. Only a provider setting (`roder-runner serve
   * --host-is-sandbox`): no destination config, state or HTTP client can set it. Sessions under bwrap address
   * their own sandbox's view either way.
   */
  hostIsSandbox?: boolean;
}

/** The `unix-local` provider: its sessions are `LocalSession`s. */
export interface LocalRunnerProvider extends RemoteRunnerProvider {
  createSession(destination: RunnerDestinationInput, options?: RunnerCallOptions): Promise<LocalSession>;
  resumeSession(state: RunnerSessionState, options?: RunnerCallOptions): Promise<LocalSession>;
  /**
   * Deletes a snapshot's archive from the store (snapshots are kept until deleted). Only an archive this runner
   * wrote is removed; an unknown or already deleted one resolves; anything else a ref names is refused.
   */
  deleteSnapshot(ref: RunnerSnapshotRef): Promise<void>;
}

export function createLocalProvider(settings: LocalProviderSettings = {}): LocalRunnerProvider {
  // Secrets the resolver gave, as the variables `resolveSecret` reads, laid over the environment.
  const secretEnv = secretEnvironment(() => settings.env ?? process.env, settings.secrets);
  const env = secretEnv.env;
  const primeSecrets = secretEnv.prime;
  const bwrap = () => settings.bwrapPath ?? which("bwrap");
  if (settings.hostIsSandbox !== undefined && typeof settings.hostIsSandbox !== "boolean")
    throw new RunnerError("invalid_request", "hostIsSandbox must be true or false");
  const hostIsSandbox = settings.hostIsSandbox === true;
  const runtime = () => ({
    env: env(),
    bwrap: bwrap(),
    setpriv: which("setpriv"),
    nsenter: which("nsenter"),
    slirp4netns: which("slirp4netns"),
    hostIsSandbox,
  });
  const registryDir = settings.registryDir ?? join(tmpdir(), "roder-local-sessions");
  const mountTools = () => which("rclone") !== null && which("fusermount3") !== null;
  const root = settings.root ?? defaultLocalRoot();
  const owner = settings.owner ?? DEFAULT_OWNER;

  // Export needs `config.artifacts`; without it exportArtifact says so with UnsupportedCapabilityError. Bucket
  // mounts need rclone and FUSE on this host; provider-native (bind) mounts, root.
  const capabilities = (): RunnerCapabilities => {
    const tools = mountTools();
    return runnerCapabilities({
      mounts: {
        s3: tools,
        gcs: tools,
        r2: tools,
        azure_blob: tools,
        box_storage: tools,
        provider_native: process.getuid?.() === 0,
      },
    });
  };
  const ctx: LocalProviderContext = {
    env,
    primeSecrets,
    runtime,
    capabilities,
    registryDir,
    root,
    owner,
  };

  return {
    id: LOCAL_PROVIDER_ID,
    capabilities,
    setupHint() {
      const missing: string[] = [];
      if (!which("bwrap")) missing.push("bubblewrap (for isolation 'bwrap'): apt-get install bubblewrap");
      if (!mountTools()) missing.push("rclone and fuse3 (for bucket mounts): apt-get install rclone fuse3");
      return missing.length ? `optional tools missing: ${missing.join("; ")}` : null;
    },
    limits: () => (hostIsSandbox ? { ...LOCAL_LIMITS, ...HOST_IS_SANDBOX_LIMITS } : { ...LOCAL_LIMITS }),
    planMounts: (d) =>
      planHostMounts(parseDestinationInput(d, LOCAL_PROVIDER_ID), {
        providerId: LOCAL_PROVIDER_ID,
        env: env(),
        capabilities: capabilities().mounts,
      }),
    async validateDestination(destination) {
      await validateLocalDestination(ctx, parseDestinationInput(destination, LOCAL_PROVIDER_ID));
    },
    async createSession(destination, options) {
      checkAborted(options?.signal, "createSession");
      const d = parseDestinationInput(destination, LOCAL_PROVIDER_ID);
      const config = await validateLocalDestination(ctx, d);
      const sessionId = `local-${randomUUID()}`;
      const workspaceRoot = await newWorkspace(ctx, config, sessionId);
      const info: LocalSessionInfo = {
        sessionId,
        destinationId: d.id,
        workspaceRoot,
        config,
        binds: [],
        readOnlyEntries: [],
        mounts: d.default_manifest.mounts,
        snapshotDir: config.snapshot_dir ?? settings.snapshotDir ?? join(tmpdir(), "roder-local-snapshots"),
        registryDir,
        sandbox: null,
      };
      const copyEntries = async (session: LocalSession) => {
        for (const e of d.default_manifest.entries) {
          const target = hostPathFor(session, e.target);
          await fs.cp(e.source, target, { recursive: true, force: true });
          if (!e.writable) info.readOnlyEntries.push(target);
        }
      };
      return openSession(ctx, info, copyEntries, { signal: options?.signal, operation: "createSession" });
    },
    deleteSnapshot: deleteSnapshotArchive,
    async resumeSession(state, options) {
      checkAborted(options?.signal, "resumeSession");
      return resumeLocalSession(ctx, state, options?.signal);
    },
  };
}

/** The default instance: sessions in fresh temporary directories. */
export const localProvider = createLocalProvider();
