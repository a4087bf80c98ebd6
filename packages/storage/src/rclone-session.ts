import {
  CancelledError,
  confinePath,
  type EnvSource,
  InvalidDestinationConfigError,
  MissingDependencyError,
  parseMountUri,
  type RemoteRunnerSession,
  RunnerError,
  type RunnerMount,
  redactSecrets,
  UnsupportedCapabilityError,
} from "@roder/runner-contract";
import { resolveBucketCredentials } from "./credentials.js";
import {
  allowsCredentialsInSandbox,
  CredentialsInSandboxError,
  type CredentialsInSandboxSetting,
} from "./credentials-in-sandbox.js";
import { planRcloneMount, type RcloneMountPlan } from "./rclone-plan.js";

/**
 * A bucket mounted inside a sandbox (what a remote session keeps in its state to unmount it later, also from
 * another process). No secret: the credentials lived only in the mount process's environment.
 */
export interface SandboxMountRef {
  path: string;
  /** rclone's remote control inside the sandbox (read-write mounts): drained before unmounting. */
  rc: string | null;
}

/**
 * $1 mount path, $2 readiness timeout (s), $3 env names to unset, then rclone's arguments. The credentials
 * come in the environment (RCLONE_CONFIG_RODER_*), never as arguments. Exit 91: no rclone; 92: no FUSE.
 */
const MOUNT = [
  'p="$1"; t="$2"; for v in $3; do unset "$v"; done; shift 3',
  'command -v rclone >/dev/null 2>&1 || { echo "rclone is not installed in the sandbox image" >&2; exit 91; }',
  '[ -e /dev/fuse ] || { echo "/dev/fuse is missing: FUSE is not available in this sandbox" >&2; exit 92; }',
  'mkdir -p -- "$p" || exit 90',
  'log="${TMPDIR:-/tmp}/roder-rclone-$$.log"',
  // In the background in a session of its own (not rclone's --daemon: its parent binds the rc port too), so
  // the command that started it can end and a kill of its process group does not reach the mount.
  'bg() { if command -v setsid >/dev/null 2>&1; then setsid "$@"; else "$@"; fi; }',
  'bg rclone "$@" --log-file "$log" --log-level NOTICE </dev/null >/dev/null 2>&1 &',
  "pid=$!",
  'ready() { if command -v mountpoint >/dev/null 2>&1; then mountpoint -q -- "$p"; else grep -qs " $p fuse" /proc/self/mounts; fi; }',
  "i=0",
  'fail() { kill "$pid" 2>/dev/null; tail -n 3 "$log" >&2; exit "$1"; }',
  "until ready; do",
  '  kill -0 "$pid" 2>/dev/null || fail 93',
  '  i=$((i+1)); [ "$i" -gt $((t*10)) ] && fail 94',
  "  sleep 0.1",
  "done",
].join("\n");

/** $1 mount path: unmounts it (lazily if busy). */
const UNMOUNT =
  'fusermount3 -u -- "$1" 2>/dev/null || fusermount -u -- "$1" 2>/dev/null || fusermount3 -uz -- "$1" 2>/dev/null || umount -l -- "$1"';

type Runner = Pick<RemoteRunnerSession, "runCommand">;
let seq = 0;
const id = (what: string) => `roder-${what}-${Date.now().toString(36)}-${(seq++).toString(36)}`;

/**
 * Runs a mount plan inside a sandbox through the session's own `runCommand` (how Fly and E2B mount buckets):
 * rclone as a daemon with the credentials in its environment only — they travel the way each provider sends
 * command env (Fly: exec stdin; E2B: the envd request body), never on a command line — then waits for the
 * FUSE mount point. Typed errors: `MissingDependencyError` when the image lacks rclone or FUSE.
 */
export async function mountInSandbox(
  session: Runner,
  plan: RcloneMountPlan,
  opts: { providerId: string; signal?: AbortSignal },
): Promise<SandboxMountRef> {
  if (opts.signal?.aborted) throw new CancelledError({ operation: "mount bucket" });
  const secrets = plan.secretEnv.map((k) => plan.env[k]!).filter(Boolean);
  const timeoutS = Math.ceil(plan.readiness.timeoutMs / 1000);
  const r = await session.runCommand(
    {
      command_id: id("mount"),
      program: "/bin/sh",
      args: [
        "-c",
        MOUNT,
        "roder-mount",
        plan.mountPath,
        String(timeoutS),
        plan.unsetEnv.join(" "),
        ...plan.args,
      ],
      env: Object.entries(plan.env),
      timeout_ms: (timeoutS + 30) * 1000,
    },
    opts.signal ? { signal: opts.signal } : {},
  );
  if (r.exit_code === 0) return { path: plan.mountPath, rc: plan.rcAddr };
  const why =
    redactSecrets(r.stderr.trim().split("\n").slice(-3).join(" | "), secrets) || `exit ${r.exit_code}`;
  if (r.exit_code === 91 || r.exit_code === 92)
    throw new MissingDependencyError({
      dependency: r.exit_code === 91 ? "rclone" : "fuse (/dev/fuse)",
      purpose: `${opts.providerId}: mounting ${plan.kind} at ${plan.mountPath} (${why})`,
      install:
        "install rclone and fuse3 in the sandbox image (template / Docker image); the sandbox needs /dev/fuse",
    });
  throw new RunnerError(
    "mount_failed",
    `${opts.providerId}: rclone could not mount ${plan.kind} at ${plan.mountPath}: ${why}`,
  );
}

/**
 * Unmounts a bucket mounted by `mountInSandbox`: for a read-write mount, first waits (up to `drainMs`) until
 * rclone's write-back has uploaded every file (a write followed at once by `close` is in the bucket).
 */
export async function unmountInSandbox(
  session: Runner,
  mount: SandboxMountRef,
  opts: { drainMs?: number } = {},
): Promise<void> {
  if (mount.rc) {
    const until = Date.now() + (opts.drainMs ?? 120_000);
    while (Date.now() < until) {
      const r = await session.runCommand({
        command_id: id("drain"),
        program: "rclone",
        args: ["rc", "vfs/stats", "--url", `http://${mount.rc}/`],
        env: [["RCLONE_CONFIG", "/dev/null"]],
        timeout_ms: 30_000,
      });
      let dc: { uploadsInProgress?: number; uploadsQueued?: number } | undefined;
      try {
        dc = (JSON.parse(r.stdout) as { diskCache?: typeof dc }).diskCache;
      } catch {
        dc = undefined;
      }
      if (r.exit_code !== 0 || !dc || ((dc.uploadsInProgress ?? 0) === 0 && (dc.uploadsQueued ?? 0) === 0))
        break;
      await new Promise((res) => setTimeout(res, 200));
    }
  }
  await session.runCommand({
    command_id: id("unmount"),
    program: "/bin/sh",
    args: ["-c", UNMOUNT, "roder-unmount", mount.path],
    timeout_ms: 60_000,
  });
}

/**
 * Before create: every bucket mount of a manifest names a valid URI and a secret ref whose variables are set
 * (a missing one fails here, naming them), and its path stays in the workspace. `provider_native` is refused,
 * and so is a bucket mount the destination did not allow to place its credentials inside the sandbox
 * (`opts.allowCredentialsInSandbox`, the destination config's `allow_credentials_in_sandbox`:
 * `CredentialsInSandboxError`, before any secret is read).
 */
export function checkSandboxMounts(
  providerId: string,
  mounts: readonly RunnerMount[],
  workspaceRoot: string,
  env?: EnvSource,
  opts: { allowCredentialsInSandbox?: CredentialsInSandboxSetting } = {},
): void {
  for (const m of mounts) {
    if (m.intent.kind === "provider_native")
      throw new UnsupportedCapabilityError({
        providerId,
        capability: "mounts.provider_native",
        message: `${providerId}: provider_native mounts (volumes) are not supported (mount '${m.name}')`,
      });
    confinePath(m.path, { root: workspaceRoot, access: "write" });
    parseMountUri(m.intent.uri, m.intent.kind);
    if (!m.intent.credentials)
      throw new InvalidDestinationConfigError({
        providerId,
        message: `mount '${m.name}': a ${m.intent.kind} mount needs intent.credentials (an env secret ref)`,
      });
    if (!allowsCredentialsInSandbox(opts.allowCredentialsInSandbox, m.name))
      throw new CredentialsInSandboxError({ providerId, mount: m.name });
    resolveBucketCredentials(m.intent.kind, m.intent.credentials, env);
  }
}

/**
 * Mounts every bucket of a manifest inside the sandbox (rclone + FUSE in the sandbox: the credentials are in
 * the sandbox, in the mount process's environment), each only when `allowCredentialsInSandbox` allows it
 * (`CredentialsInSandboxError` otherwise, before anything runs). All or nothing: a failure unmounts what was
 * mounted.
 */
export async function mountManifestInSandbox(
  session: Runner,
  opts: {
    providerId: string;
    mounts: readonly RunnerMount[];
    workspaceRoot: string;
    env?: EnvSource;
    signal?: AbortSignal;
    /** The destination config's `allow_credentials_in_sandbox`: a mount it does not allow is refused. */
    allowCredentialsInSandbox?: CredentialsInSandboxSetting;
  },
): Promise<SandboxMountRef[]> {
  // Checked for every mount before any is mounted: nothing reaches the sandbox when one is refused.
  for (const m of opts.mounts)
    if (
      m.intent.kind !== "provider_native" &&
      m.intent.credentials &&
      !allowsCredentialsInSandbox(opts.allowCredentialsInSandbox, m.name)
    )
      throw new CredentialsInSandboxError({ providerId: opts.providerId, mount: m.name });
  const done: SandboxMountRef[] = [];
  try {
    for (const m of opts.mounts) {
      if (m.intent.kind === "provider_native" || !m.intent.credentials) continue;
      const plan = planRcloneMount({
        mount: m,
        credentials: resolveBucketCredentials(m.intent.kind, m.intent.credentials, opts.env),
        mountPath: confinePath(m.path, { root: opts.workspaceRoot, access: "write" }),
        // rclone's remote control on the sandbox's loopback: a port of its own per mount.
        ...(m.read_only ? {} : { rcPort: 20000 + Math.floor(Math.random() * 40000) }),
      });
      done.push(
        await mountInSandbox(session, plan, {
          providerId: opts.providerId,
          ...(opts.signal ? { signal: opts.signal } : {}),
        }),
      );
    }
    return done;
  } catch (error) {
    for (const ref of done.reverse()) await unmountInSandbox(session, ref).catch(() => {});
    throw error;
  }
}
