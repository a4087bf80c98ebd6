import {
  closeSync,
  constants,
  fchmodSync,
  fstatSync,
  ftruncateSync,
  lstatSync,
  openSync,
  readFileSync,
  writeSync,
} from "node:fs";
import { basename, dirname, isAbsolute, normalize } from "node:path";
import type { RunnerSessionState } from "@roder/runner-contract";

/**
 * A session state file is data, never authority: before the CLI resumes (and maybe closes) the session it
 * names, the paths in it must be the runner's own. A refusal says why; nothing is deleted or unmounted.
 */
export class StateRefusedError extends Error {}
/** The state names a session whose workspace is gone: closed (or never of this machine); nothing to touch. */
export class StateGoneError extends Error {}

const LOCAL_ID = /^local-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const uid = () => process.getuid?.() ?? -1;

/** A directory of ours that no one else can write into (so what it holds was put there by us). */
function ownPrivateDir(path: string, what: string): void {
  let st: ReturnType<typeof lstatSync>;
  try {
    st = lstatSync(path);
  } catch {
    throw new StateRefusedError(`${what} ${path} does not exist`);
  }
  if (st.isSymbolicLink() || !st.isDirectory())
    throw new StateRefusedError(`${what} ${path} is not a directory`);
  if (uid() >= 0 && st.uid !== uid())
    throw new StateRefusedError(`${what} ${path} belongs to another user (uid ${st.uid})`);
  if ((st.mode & 0o022) !== 0)
    throw new StateRefusedError(
      `${what} ${path} is writable by other users (mode ${(st.mode & 0o777).toString(8)})`,
    );
}

const under = (path: string, root: string) => {
  const p = normalize(path);
  return isAbsolute(p) && (p === root || p.startsWith(`${root}/`));
};

function readJsonFile(path: string, what: string): Record<string, unknown> {
  const st = (() => {
    try {
      return lstatSync(path);
    } catch {
      throw new StateRefusedError(`${what} ${path} does not exist`);
    }
  })();
  if (!st.isFile() || (uid() >= 0 && st.uid !== uid()))
    throw new StateRefusedError(`${what} ${path} is not a file of this user`);
  try {
    return JSON.parse(readFileSync(path, "utf8")) as Record<string, unknown>;
  } catch {
    throw new StateRefusedError(`${what} ${path} is not JSON`);
  }
}

/**
 * What a unix-local state must show before the CLI acts on it: the session id is a runner id; the workspace is
 * `<dir>/<session_id>`, a real directory (no symlink) in a directory of this user that no one else can write
 * to, with the runner's owner tag beside it naming the same session; the runner's registry record (in a
 * private directory of this user) names the same workspace; every bind mount the state or the record lists
 * lies inside that workspace.
 */
export function checkLocalState(state: RunnerSessionState): void {
  if (state.snapshot) return; // a restore makes a new workspace of the runner's own; nothing named is touched
  const meta = (state.metadata ?? {}) as Record<string, unknown>;
  const id = state.session_id;
  if (!LOCAL_ID.test(id)) throw new StateRefusedError(`'${id}' is not a unix-local session id`);
  const hostRoot = typeof meta.host_root === "string" ? meta.host_root : meta.workspace_root;
  if (typeof hostRoot !== "string" || !isAbsolute(hostRoot) || normalize(hostRoot) !== hostRoot)
    throw new StateRefusedError("the state names no absolute, normalized workspace path");
  if (basename(hostRoot) !== id)
    throw new StateRefusedError(`the workspace ${hostRoot} is not named after its session '${id}'`);
  const ws = lstatSync(hostRoot, { throwIfNoEntry: false });
  if (!ws) throw new StateGoneError(`session '${id}' is closed or unknown on this machine`);
  ownPrivateDir(dirname(hostRoot), "the workspace's parent");
  if (ws.isSymbolicLink() || !ws.isDirectory())
    throw new StateRefusedError(`the workspace ${hostRoot} is not a directory`);
  const tag = readJsonFile(`${hostRoot}.session.json`, "the owner tag");
  if (tag.session_id !== id)
    throw new StateRefusedError(`the owner tag beside ${hostRoot} names another session`);
  const registryDir = meta.registry_dir;
  if (typeof registryDir !== "string" || !isAbsolute(registryDir))
    throw new StateRefusedError("the state names no registry");
  ownPrivateDir(registryDir, "the registry");
  const record = readJsonFile(`${registryDir}/${id}.json`, "the registry record");
  if (record.workspace_root !== hostRoot)
    throw new StateRefusedError("the registry record names another workspace than the state");
  for (const [where, list] of [
    ["state binds", meta.binds],
    ["state read_only_entries", meta.read_only_entries],
    ["registry binds", record.binds],
    ["registry read_only_entries", record.read_only_entries],
  ] as const) {
    for (const p of Array.isArray(list) ? list : [])
      if (typeof p !== "string" || !under(p, hostRoot))
        throw new StateRefusedError(`${where} lists ${String(p)}, outside the session's workspace`);
  }
}

/** An http state: its server must be the one this CLI is configured for (the token goes nowhere else). */
export function checkHttpState(state: RunnerSessionState, configuredUrl: string | undefined): void {
  const meta = (state.metadata ?? {}) as Record<string, unknown>;
  const named = typeof meta.base_url === "string" ? meta.base_url : undefined;
  if (!named) return;
  const norm = (u: string) => u.replace(/\/+$/, "");
  if (!configuredUrl)
    throw new StateRefusedError(
      `it names the server ${named}, and RODER_RUNNER_HTTP_URL is not set: the CLI sends RODER_RUNNER_HTTP_TOKEN only to the server it is configured for (export RODER_RUNNER_HTTP_URL=${named} if you trust it)`,
    );
  if (norm(configuredUrl) !== norm(named))
    throw new StateRefusedError(
      `it names the server ${named}, but RODER_RUNNER_HTTP_URL is ${configuredUrl}: RODER_RUNNER_HTTP_TOKEN is sent only there`,
    );
}

/**
 * Opens `path` for writing (created 0600 if missing) without following a symlink planted there, and checks it is
 * a regular file of this user: the descriptor, or StateRefusedError (nothing left open).
 */
function openPrivateFile(path: string): number {
  let fd: number;
  try {
    fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_NOFOLLOW, 0o600);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new StateRefusedError(
      code === "ELOOP" ? `${path} is a symbolic link: not followed` : `cannot write ${path} (${code})`,
    );
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile() || (uid() >= 0 && st.uid !== uid()))
      throw new StateRefusedError(`${path} is not a regular file of this user`);
  } catch (error) {
    closeSync(fd);
    throw error;
  }
  return fd;
}

/**
 * Writes a state file 0600 without following a symlink planted at `path`: a new file, or an existing regular
 * file of this user (truncated).
 */
export function writePrivateFile(path: string, text: string): void {
  const fd = openPrivateFile(path);
  try {
    fchmodSync(fd, 0o600);
    ftruncateSync(fd, 0);
    writeSync(fd, text);
  } finally {
    closeSync(fd);
  }
}

/**
 * Checks before a session is made that `path` can take a state file: opened (created empty if missing) without
 * following a symlink, a regular file of this user. Nothing is truncated.
 */
export function checkPrivateFile(path: string): void {
  closeSync(openPrivateFile(path));
}
