import { promises as fs } from "node:fs";
import { join } from "node:path";
import {
  confinePath,
  type EnvSource,
  type RunnerCapabilities,
  RunnerError,
  type RunnerMount,
} from "@roder/runner-contract";
import { bindMount } from "./local-binds.js";
import { makeSessionCgroup } from "./local-cgroup.js";
import type { LocalDestinationConfig } from "./local-config.js";
import { mountBucket } from "./local-mounts.js";
import { ensurePrivateDir } from "./local-private-dir.js";
import { writeRegistry } from "./local-registry.js";
import { LocalSession } from "./local-session.js";
import { checkAborted, type LocalRuntime, type LocalSessionInfo } from "./local-session-info.js";
import { newTag, tagPathFor, updateTag, writeTag } from "./local-tags.js";

// Making a session's workspace ready (createSession, and resumeSession from a snapshot): the workspace and its
// owner tag, manifest entries, mounts, the sandbox, the registry record.

/** What the provider's parts share: its settings, resolved, and its secrets and tools as of each call. */
export interface LocalProviderContext {
  /** The environment, with the secrets the resolver gave laid over it. */
  env(): EnvSource;
  /** Asks the secret resolver for the secret refs in `sources` (configs, mounts). */
  primeSecrets(...sources: unknown[]): Promise<void>;
  runtime(): LocalRuntime;
  capabilities(): RunnerCapabilities;
  registryDir: string;
  /** Parent of workspaces when a destination sets no `workspace_dir`. */
  root: string;
  owner: string;
}

/**
 * The owner tag first (atomically), then the workspace: a caller killed at any point leaves a tagged
 * session the sweeper can find, never an untagged directory.
 */
export async function newWorkspace(
  ctx: LocalProviderContext,
  config: LocalDestinationConfig,
  sessionId: string,
): Promise<string> {
  const parent = config.workspace_dir ?? ctx.root;
  // Under the default root, private to this user (as the mkdtemp workspaces were), and refused if someone
  // else made it first; a destination's workspace_dir is its operator's.
  const mode = config.workspace_dir ? 0o777 : 0o700;
  if (config.workspace_dir) await fs.mkdir(parent, { recursive: true, mode });
  else await ensurePrivateDir(parent, "workspace root");
  const dir = join(parent, sessionId);
  const tag = tagPathFor(dir);
  await writeTag(
    tag,
    newTag({ sessionId, owner: ctx.owner, ttlSeconds: config.ttl_seconds, registryDir: ctx.registryDir }),
  );
  try {
    await fs.mkdir(dir, { mode });
  } catch (error) {
    await fs.rm(tag, { force: true });
    throw error;
  }
  return dir;
}

/** Host path of a manifest target (a runner path, relative to or under the session's runner root). */
export function hostPathFor(session: LocalSession, target: string): string {
  const runnerPath = confinePath(target, { root: session.runnerRoot, access: "write" });
  return session.info.workspaceRoot + runnerPath.slice(session.runnerRoot.length);
}

/**
 * The session over a new workspace, made ready: `populate` fills the workspace (manifest entries, a snapshot),
 * then read-only entries are bound, mounts attached, the sandbox (or cgroup) made and the session registered.
 * On any failure the session is closed (what was made is undone) and the error thrown. With `operation`, an
 * abort is checked once the mounts are attached.
 */
export async function openSession(
  ctx: LocalProviderContext,
  info: LocalSessionInfo,
  populate: (session: LocalSession) => Promise<void>,
  abort: { signal?: AbortSignal | undefined; operation?: string },
): Promise<LocalSession> {
  const session = new LocalSession(info, ctx.runtime(), await fs.realpath(info.workspaceRoot));
  try {
    await populate(session);
    await applyReadOnly(session);
    await attachMounts(ctx, session, info.mounts, abort.signal);
    if (abort.operation) checkAborted(abort.signal, abort.operation);
    await register(session);
    await updateTag(tagPathFor(info.workspaceRoot), { state: "ready" });
    return session;
  } catch (error) {
    await session.close().catch(() => {});
    throw error;
  }
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

async function attachMounts(
  ctx: LocalProviderContext,
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
        env: ctx.env(),
        ...(signal ? { signal } : {}),
      });
      session.addUnmount(() => mounted.unmount());
    }
  }
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
