import { promises as fs } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { z } from "zod";
import { atomicWrite } from "./local-fs-write.js";

/** Default owner tag, as on Fly and E2B. */
export const DEFAULT_OWNER = "roder-runners";

/** Default parent of session workspaces (and of their tag files): `<tmp>/roder-local-<uid>`, one per user. */
export function defaultLocalRoot(): string {
  return join(tmpdir(), `roder-local-${process.getuid?.() ?? "user"}`);
}

/** What a session directory is called: `local-<uuid>` (anything else under a root is never touched). */
export const SESSION_DIR_PATTERN = /^local-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * The owner/expiry tag of a session: `<root>/<session_id>.session.json`, beside the workspace (never inside
 * it, so commands cannot see or alter it). Written before the workspace exists, so a caller killed at any
 * point of `createSession` leaves a tagged session, and removed after the workspace on `close()`.
 */
export const SessionTagSchema = z.object({
  session_id: z.string(),
  owner: z.string(),
  created_at: z.string(),
  expires_at: z.string().nullable(),
  /** The process that created the session, and its host: a `creating` tag whose process is gone was abandoned. */
  pid: z.number().int(),
  hostname: z.string(),
  /** `creating` until `createSession` returns; `kept` after a `close()` that keeps the workspace. */
  state: z.enum(["creating", "ready", "kept"]),
  registry_dir: z.string().optional(),
});
export type SessionTag = z.infer<typeof SessionTagSchema>;

export function tagPathFor(workspaceRoot: string): string {
  return `${workspaceRoot}.session.json`;
}

export function newTag(args: {
  sessionId: string;
  owner: string;
  ttlSeconds: number;
  registryDir: string;
}): SessionTag {
  const now = Date.now();
  return {
    session_id: args.sessionId,
    owner: args.owner,
    created_at: new Date(now).toISOString(),
    expires_at: new Date(now + args.ttlSeconds * 1000).toISOString(),
    pid: process.pid,
    hostname: hostname(),
    state: "creating",
    registry_dir: args.registryDir,
  };
}

/** Writes the tag atomically (temp file, fsync, rename): a reader sees the whole tag or none. */
export async function writeTag(path: string, tag: SessionTag): Promise<void> {
  await atomicWrite(path, new TextEncoder().encode(`${JSON.stringify(tag)}\n`));
}

/** The tag at `path`; null when it is missing or not a tag. */
export async function readTag(path: string): Promise<SessionTag | null> {
  let text: string;
  try {
    text = await fs.readFile(path, "utf8");
  } catch {
    return null;
  }
  try {
    const r = SessionTagSchema.safeParse(JSON.parse(text));
    return r.success ? r.data : null;
  } catch {
    return null;
  }
}

/** Rewrites the tag's state (no-op when there is no tag, e.g. a session made before tags existed). */
export async function updateTag(path: string, patch: Partial<SessionTag>): Promise<void> {
  const tag = await readTag(path);
  if (tag) await writeTag(path, { ...tag, ...patch });
}
