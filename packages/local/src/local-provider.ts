import { execFile } from "node:child_process";
import { createHash, randomUUID } from "node:crypto";
import { existsSync, promises as fs } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { promisify } from "node:util";
import {
  confinePath,
  type EnvSource,
  InvalidDestinationConfigError,
  isWithin,
  parseDestinationInput,
  parseMountUri,
  type RemoteRunnerProvider,
  type RunnerCallOptions,
  type RunnerCapabilities,
  type RunnerDestination,
  type RunnerDestinationInput,
  RunnerError,
  type RunnerMount,
  type RunnerSessionState,
  type RunnerSnapshotRef,
  type SecretResolver,
  SessionNotFoundError,
  secretEnvironment,
  UnsupportedCapabilityError,
} from "@roder/runner-contract";
import { planHostMounts, resolveBucketCredentials } from "@roder/runner-storage";
import { z } from "zod";
import { bindMount } from "./local-binds.js";
import { makeSessionCgroup, ownCgroup } from "./local-cgroup.js";
import {
  type LocalDestinationConfig,
  LocalDestinationConfigSchema,
  parseLocalConfig,
} from "./local-config.js";
import { which } from "./local-isolation.js";
import { HOST_IS_SANDBOX_LIMITS, LOCAL_LIMITS } from "./local-limits.js";
import { mountBucket } from "./local-mounts.js";
import { ensurePrivateDir } from "./local-private-dir.js";
import type { SandboxRecord } from "./local-sandbox.js";
import {
  checkAborted,
  LOCAL_PROVIDER_ID,
  LocalSession,
  type LocalSessionInfo,
  type RegistryEntry,
  registryPath,
  writeRegistry,
} from "./local-session.js";
import { DEFAULT_OWNER, defaultLocalRoot, newTag, tagPathFor, updateTag, writeTag } from "./local-tags.js";

const run = promisify(execFile);

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

const MetadataSchema = z.object({
  workspace_root: z.string().startsWith("/"),
  host_root: z.string().startsWith("/").optional(),
  config: LocalDestinationConfigSchema,
  binds: z.array(z.string()).default(() => []),
  read_only_entries: z.array(z.string()).default(() => []),
  mounts: z.array(z.any()).default(() => []),
  snapshot_dir: z.string(),
  registry_dir: z.string(),
  process_tracking: z.enum(["sandbox", "cgroup", "marker"]).optional(),
  sandbox_restarts: z.number().int().nonnegative().optional(),
});

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

  const capabilities = (): RunnerCapabilities => ({
    command_exec: true,
    file_read: true,
    file_write: true,
    port_preview: true,
    snapshots: true,
    cancellation: true,
    // Export needs `config.artifacts`; without it exportArtifact says so with UnsupportedCapabilityError.
    artifact_export: true,
    mounts: {
      s3: mountTools(),
      gcs: mountTools(),
      r2: mountTools(),
      azure_blob: mountTools(),
      box_storage: mountTools(),
      provider_native: process.getuid?.() === 0,
    },
  });

  function checkMounts(
    config: LocalDestinationConfig,
    mounts: readonly RunnerMount[],
    root = "/workspace",
  ): void {
    const caps = capabilities().mounts;
    for (const m of mounts) {
      confinePath(m.path, { root, access: "write" });
      if (!caps[m.intent.kind]) {
        throw new RunnerError(
          "unsupported_capability",
          `unix-local cannot mount ${m.intent.kind} here (mount '${m.name}')`,
        );
      }
      if (m.intent.kind === "provider_native") {
        if (!m.intent.uri.startsWith("/"))
          throw new InvalidDestinationConfigError({
            providerId: LOCAL_PROVIDER_ID,
            message: `mount '${m.name}': a provider_native mount names an absolute host directory, got '${m.intent.uri}'`,
          });
      } else {
        parseMountUri(m.intent.uri, m.intent.kind);
        if (!m.intent.credentials) {
          throw new InvalidDestinationConfigError({
            providerId: LOCAL_PROVIDER_ID,
            message: `mount '${m.name}': a ${m.intent.kind} mount needs intent.credentials (an env secret ref)`,
          });
        }
        // Missing secrets fail here, before anything is created, naming the variables to set.
        resolveBucketCredentials(m.intent.kind, m.intent.credentials, env());
      }
    }
    void config;
  }

  async function validate(d: RunnerDestination): Promise<LocalDestinationConfig> {
    if (d.provider_id !== LOCAL_PROVIDER_ID)
      throw new InvalidDestinationConfigError({
        providerId: LOCAL_PROVIDER_ID,
        message: `destination is for provider '${d.provider_id}'`,
      });
    const config = parseLocalConfig(d.config);
    await primeSecrets(d.config, d.default_manifest.mounts);
    if (config.isolation === "bwrap") {
      const rt = runtime();
      if (!rt.bwrap)
        throw new RunnerError(
          "missing_dependency",
          "isolation 'bwrap' needs bubblewrap, which is not installed: apt-get install bubblewrap",
        );
      // Commands enter the session's sandbox through its namespaces. Unprivileged, bubblewrap locks them behind a
      // nested user namespace that nothing outside can enter: one sandbox per session needs a root runner.
      if (process.getuid?.() !== 0)
        throw new UnsupportedCapabilityError({
          providerId: LOCAL_PROVIDER_ID,
          capability: "isolation 'bwrap'",
          message:
            "isolation 'bwrap' needs the runner to run as root on unix-local (commands enter the session's one sandbox; unprivileged, bubblewrap locks its namespaces behind a nested user namespace): run the runner as root, or use isolation 'none'",
        });
      if (!rt.setpriv || !rt.nsenter)
        throw new RunnerError(
          "missing_dependency",
          "isolation 'bwrap' needs setpriv and nsenter (util-linux): apt-get install util-linux",
        );
      if (config.network === "egress" && !rt.slirp4netns)
        throw new RunnerError(
          "missing_dependency",
          "network 'egress' needs slirp4netns, which is not installed: apt-get install slirp4netns (or set network 'none')",
        );
    }
    for (const e of d.default_manifest.entries) {
      confinePath(e.target, { root: "/workspace", access: "write" });
      if (!existsSync(e.source))
        throw new InvalidDestinationConfigError({
          providerId: LOCAL_PROVIDER_ID,
          message: `manifest entry source '${e.source}' does not exist on this host`,
        });
    }
    checkMounts(config, d.default_manifest.mounts);
    return config;
  }

  /** Holds the session's processes together (its sandbox, or its cgroup), then records it in the registry. */
  async function register(session: LocalSession): Promise<void> {
    const info = session.info;
    info.sandbox =
      info.config.isolation === "bwrap"
        ? await session.startSandbox()
        : await makeSessionCgroup(info.sessionId);
    await writeRegistry(info);
  }

  /** The registry's entry of a session: the runner's own record, trusted over what a state says. */
  async function registryEntry(dir: string, sessionId: string): Promise<RegistryEntry | null> {
    if (!/^local-[0-9a-f-]{36}$/.test(sessionId)) return null;
    try {
      const st = await fs.lstat(dir);
      // A registry another user could write is not trusted.
      if (!st.isDirectory() || st.uid !== (process.getuid?.() ?? st.uid) || (st.mode & 0o022) !== 0)
        return null;
      return JSON.parse(await fs.readFile(registryPath(dir, sessionId), "utf8")) as RegistryEntry;
    } catch {
      return null;
    }
  }

  async function attachMounts(
    session: LocalSession,
    mounts: readonly RunnerMount[],
    signal?: AbortSignal,
  ): Promise<void> {
    for (const m of mounts) {
      const target = hostPathFor(session, m.path);
      await fs.mkdir(target, { recursive: true });
      if (m.intent.kind === "provider_native") {
        await bindMount(m.intent.uri, target, m.read_only);
        session.info.binds.push(target);
      } else {
        const mounted = await mountBucket({
          mount: m,
          hostPath: target,
          env: env(),
          ...(signal ? { signal } : {}),
        });
        session.addUnmount(() => mounted.unmount());
      }
    }
  }

  /**
   * The owner tag first (atomically), then the workspace: a caller killed at any point leaves a tagged
   * session the sweeper can find, never an untagged directory.
   */
  async function newWorkspace(config: LocalDestinationConfig, sessionId: string): Promise<string> {
    const parent = config.workspace_dir ?? root;
    // Under the default root, private to this user (as the mkdtemp workspaces were), and refused if someone
    // else made it first; a destination's workspace_dir is its operator's.
    const mode = config.workspace_dir ? 0o777 : 0o700;
    if (config.workspace_dir) await fs.mkdir(parent, { recursive: true, mode });
    else await ensurePrivateDir(parent, "workspace root");
    const dir = join(parent, sessionId);
    const tag = tagPathFor(dir);
    await writeTag(tag, newTag({ sessionId, owner, ttlSeconds: config.ttl_seconds, registryDir }));
    try {
      await fs.mkdir(dir, { mode });
    } catch (error) {
      await fs.rm(tag, { force: true });
      throw error;
    }
    return dir;
  }

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
      await validate(parseDestinationInput(destination, LOCAL_PROVIDER_ID));
    },
    async createSession(destination, options) {
      checkAborted(options?.signal, "createSession");
      const d = parseDestinationInput(destination, LOCAL_PROVIDER_ID);
      const config = await validate(d);
      const sessionId = `local-${randomUUID()}`;
      const workspaceRoot = await newWorkspace(config, sessionId);
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
      const session = new LocalSession(info, runtime(), await fs.realpath(workspaceRoot));
      try {
        for (const e of d.default_manifest.entries) {
          const target = hostPathFor(session, e.target);
          await fs.cp(e.source, target, { recursive: true, force: true });
          if (!e.writable) info.readOnlyEntries.push(target);
        }
        await applyReadOnly(session);
        await attachMounts(session, d.default_manifest.mounts, options?.signal);
        checkAborted(options?.signal, "createSession");
        await register(session);
        await updateTag(tagPathFor(workspaceRoot), { state: "ready" });
        return session;
      } catch (error) {
        await session.close().catch(() => {});
        throw error;
      }
    },
    async deleteSnapshot(ref) {
      if (ref.provider_id !== LOCAL_PROVIDER_ID)
        throw new InvalidDestinationConfigError({
          providerId: LOCAL_PROVIDER_ID,
          message: `snapshot is for provider '${ref.provider_id}'`,
        });
      const archive = z.object({ archive: z.string() }).safeParse(ref.metadata);
      if (!archive.success)
        throw new RunnerError("invalid_request", "snapshot metadata names no archive of unix-local");
      try {
        await checkSnapshotArchive(archive.data.archive, ref.snapshot_id);
      } catch (error) {
        if (RunnerError.isInstance(error) && error.code === "not_found") return;
        throw error;
      }
      await fs.rm(archive.data.archive, { force: true });
    },
    async resumeSession(state, options) {
      checkAborted(options?.signal, "resumeSession");
      if (state.provider_id !== LOCAL_PROVIDER_ID)
        throw new InvalidDestinationConfigError({
          providerId: LOCAL_PROVIDER_ID,
          message: `state is for provider '${state.provider_id}'`,
        });
      const parsed = MetadataSchema.safeParse(state.metadata);
      if (!parsed.success)
        throw new RunnerError(
          "invalid_request",
          `state.metadata is not a unix-local session state: ${parsed.error.issues[0]?.message}`,
        );
      const meta = parsed.data;
      if (state.snapshot) {
        await primeSecrets(meta.config, meta.mounts);
        const snap = z.object({ archive: z.string(), sha256: z.string() }).parse(state.snapshot.metadata);
        let bytes: Buffer;
        try {
          await checkSnapshotArchive(snap.archive, state.snapshot.snapshot_id);
          bytes = await fs.readFile(snap.archive);
        } catch (error) {
          throw new SessionNotFoundError(
            {
              providerId: LOCAL_PROVIDER_ID,
              sessionId: state.snapshot.snapshot_id,
              message: `snapshot '${state.snapshot.snapshot_id}' is not in the store`,
            },
            { cause: error },
          );
        }
        if (createHash("sha256").update(bytes).digest("hex") !== snap.sha256)
          throw new RunnerError(
            "snapshot_corrupt",
            `snapshot '${state.snapshot.snapshot_id}' does not match its checksum`,
          );
        const sessionId = `local-${randomUUID()}`;
        const workspaceRoot = await newWorkspace(meta.config, sessionId);
        const oldHost = meta.host_root ?? meta.workspace_root;
        const rel = (p: string) => p.slice(oldHost.length);
        const info: LocalSessionInfo = {
          sessionId,
          destinationId: state.destination_id,
          workspaceRoot,
          config: meta.config,
          binds: [],
          readOnlyEntries: meta.read_only_entries.map((p) => workspaceRoot + rel(p)),
          mounts: meta.mounts as RunnerMount[],
          snapshotDir: meta.snapshot_dir,
          registryDir,
          sandbox: null,
        };
        const session = new LocalSession(info, runtime(), await fs.realpath(workspaceRoot));
        try {
          await run("tar", ["-xzf", snap.archive, "-C", workspaceRoot]);
          await applyReadOnly(session);
          await attachMounts(session, info.mounts, options?.signal);
          await register(session);
          await updateTag(tagPathFor(workspaceRoot), { state: "ready" });
          return session;
        } catch (error) {
          await session.close().catch(() => {});
          throw error;
        }
      }
      // The runner's registry, not the state, says which workspace, mounts and sandbox the session has: a state
      // file is hostile until checked, and close() deletes and unmounts what the session holds.
      const hostRoot = meta.host_root ?? meta.workspace_root;
      // Only this provider's own registry counts (never a directory the state names).
      const entryDir = registryDir;
      const entry = await registryEntry(registryDir, state.session_id);
      // The registry's own record must also be coherent: the workspace named after the session, every bind and
      // read-only entry inside it.
      const coherent =
        entry !== null &&
        basename(entry.workspace_root) === state.session_id &&
        [...entry.binds, ...entry.read_only_entries].every((p) => isWithin(p, entry.workspace_root));
      if (!entry || !coherent || entry.workspace_root !== hostRoot || !existsSync(hostRoot)) {
        throw new SessionNotFoundError({
          providerId: LOCAL_PROVIDER_ID,
          sessionId: state.session_id,
          message: `session '${state.session_id}' is closed or unknown on this machine`,
        });
      }
      const sandbox = checkedSandbox(entry.sandbox, state.session_id);
      // The registry's refs, not the state's: only what the session was made with is asked for.
      await primeSecrets(entry.config ?? meta.config, entry.mounts ?? meta.mounts);
      const info: LocalSessionInfo = {
        sessionId: state.session_id,
        destinationId: state.destination_id,
        workspaceRoot: entry.workspace_root,
        // What the session was made with (isolation, network, retention) is the registry's, not the state's.
        config: entry.config ? LocalDestinationConfigSchema.parse(entry.config) : meta.config,
        binds: entry.binds,
        readOnlyEntries: entry.read_only_entries,
        mounts: (entry.mounts ?? meta.mounts) as RunnerMount[],
        snapshotDir: entry.snapshot_dir ?? meta.snapshot_dir,
        registryDir: entryDir,
        sandbox,
      };
      return new LocalSession(info, runtime(), await fs.realpath(entry.workspace_root));
    },
  };
}

/**
 * A snapshot archive named by a ref or a state is read or deleted only if it is one this runner wrote: a regular
 * file (not a link) named `<snapshot_id>.tar.gz` with `snap-<uuid>` as the id, owned by this user. Anything
 * else — a host file a hostile state points at — is refused, untouched.
 */
async function checkSnapshotArchive(archive: string, snapshotId: string): Promise<void> {
  const name = /^snap-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
  if (!name.test(snapshotId) || basename(archive) !== `${snapshotId}.tar.gz` || !archive.startsWith("/"))
    throw new RunnerError(
      "invalid_request",
      `snapshot '${snapshotId}' does not name an archive of this runner`,
    );
  let st: Awaited<ReturnType<typeof fs.lstat>>;
  try {
    st = await fs.lstat(archive);
  } catch {
    throw new RunnerError("not_found", `snapshot '${snapshotId}' is not in the store`);
  }
  const uid = process.getuid?.();
  if (!st.isFile() || (uid !== undefined && st.uid !== uid))
    throw new RunnerError(
      "invalid_request",
      `snapshot '${snapshotId}' does not name an archive of this runner`,
    );
}

/** A cgroup named in the registry is used only if it is the session's own. */
function checkedSandbox(record: SandboxRecord | null | undefined, sessionId: string): SandboxRecord | null {
  if (!record) return null;
  if (record.kind === "cgroup" && !ownCgroup(record.path, sessionId)) return { kind: "marker" };
  return record;
}

/** Host path of a manifest target (a runner path, relative to or under the session's runner root). */
function hostPathFor(session: LocalSession, target: string): string {
  const runnerPath = confinePath(target, { root: session.runnerRoot, access: "write" });
  return session.info.workspaceRoot + runnerPath.slice(session.runnerRoot.length);
}

/** Read-only manifest entries become read-only bind mounts (which hold for root too). */
async function applyReadOnly(session: LocalSession): Promise<void> {
  for (const target of session.info.readOnlyEntries) {
    if (process.getuid?.() !== 0) {
      throw new RunnerError(
        "unsupported_capability",
        "read-only manifest entries need root (a read-only bind mount) on unix-local",
      );
    }
    await bindMount(target, target, true);
    session.info.binds.push(target);
  }
}

/** The default instance: sessions in fresh temporary directories. */
export const localProvider = createLocalProvider();
