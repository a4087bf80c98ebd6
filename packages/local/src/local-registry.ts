import { randomUUID } from "node:crypto";
import { promises as fs } from "node:fs";
import { join } from "node:path";
import { RunnerMountSchema } from "@roder/runner-contract";
import { z } from "zod";
import { LocalDestinationConfigSchema } from "./local-config.js";
import { ensurePrivateDir } from "./local-private-dir.js";
import type { SandboxRecord } from "./local-sandbox.js";
import type { LocalSessionInfo } from "./local-session-info.js";

// The runner's registry of live sessions: one private file per session, written by the runner alone and
// trusted over any state a caller hands in.

const ProcRefSchema = z.object({ pid: z.number().int().positive(), start: z.string() });

/** How a session's processes are held (`SandboxRecord`), as the registry keeps it. */
const SandboxRecordSchema = z.discriminatedUnion("kind", [
  z.object({
    kind: z.literal("bwrap"),
    init: ProcRefSchema,
    userns: z.string(),
    network: z.enum(["none", "egress", "host"]),
    slirp: ProcRefSchema.extend({ api: z.string() }).nullable(),
    forwards: z.record(z.string(), z.number().int()),
  }),
  z.object({ kind: z.literal("cgroup"), path: z.string() }),
  z.object({ kind: z.literal("marker") }),
]) satisfies z.ZodType<SandboxRecord>;

/** The runner's record of a live session. */
export const RegistryEntrySchema = z.object({
  workspace_root: z.string(),
  created_at: z.string(),
  binds: z.array(z.string()),
  read_only_entries: z.array(z.string()),
  sandbox: SandboxRecordSchema.nullish(),
  /** The config, mounts and snapshot store the session was made with (entries written before lack them). */
  config: LocalDestinationConfigSchema.optional(),
  mounts: z.array(RunnerMountSchema).optional(),
  snapshot_dir: z.string().optional(),
});
export type RegistryEntry = z.infer<typeof RegistryEntrySchema>;

export function registryPath(registryDir: string, sessionId: string): string {
  return join(registryDir, `${sessionId}.json`);
}

/** Where a session's sandbox keeps its side files (slirp's API socket, resolv.conf): the registry's, private. */
export function sideDirOf(registryDir: string, sessionId: string): string {
  return join(registryDir, `${sessionId}.sandbox`);
}

export async function writeRegistry(info: LocalSessionInfo): Promise<void> {
  const entry: RegistryEntry = {
    workspace_root: info.workspaceRoot,
    created_at: new Date().toISOString(),
    binds: info.binds,
    read_only_entries: info.readOnlyEntries,
    sandbox: info.sandbox,
    config: info.config,
    mounts: info.mounts,
    snapshot_dir: info.snapshotDir,
  };
  await ensurePrivateDir(info.registryDir, "session registry");
  const file = registryPath(info.registryDir, info.sessionId);
  const tmp = `${file}.${randomUUID()}.tmp`;
  await fs.writeFile(tmp, JSON.stringify(entry), { mode: 0o600 });
  await fs.rename(tmp, file);
}

/** A registry another user could write is not trusted: it must be a directory of ours, writable by us alone. */
export async function trustedRegistryDir(dir: string): Promise<boolean> {
  const st = await fs.lstat(dir);
  return st.isDirectory() && st.uid === (process.getuid?.() ?? st.uid) && (st.mode & 0o022) === 0;
}

async function readEntryJson(dir: string, sessionId: string): Promise<unknown> {
  try {
    return JSON.parse(await fs.readFile(registryPath(dir, sessionId), "utf8"));
  } catch {
    return null;
  }
}

/** A session's entry in the registry `dir`, decoded; null when there is none or it is not one of this runner's. */
export async function readRegistryEntry(dir: string, sessionId: string): Promise<RegistryEntry | null> {
  const decoded = RegistryEntrySchema.safeParse(await readEntryJson(dir, sessionId));
  return decoded.success ? decoded.data : null;
}

/**
 * The sandbox of a session's entry alone (the sweeper ends the sandbox of an entry whatever else it holds);
 * undefined when there is no entry or its sandbox cannot be read.
 */
export async function readRegisteredSandbox(
  dir: string,
  sessionId: string,
): Promise<SandboxRecord | null | undefined> {
  const decoded = RegistryEntrySchema.pick({ sandbox: true }).safeParse(await readEntryJson(dir, sessionId));
  return decoded.success ? decoded.data.sandbox : undefined;
}
