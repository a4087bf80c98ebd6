/**
 * Leak-proof sessions: providers that tag their sandboxes with `roder_owner` and `roder_expires_at` at
 * creation can list and remove them, so a sweeper cleans up after callers that crashed mid-create or never
 * called `close()`.
 */
export interface OwnedSession {
  session_id: string;
  /** ISO time after which the session may be removed; null when it has no expiry tag. */
  expires_at: string | null;
  state: string;
}

export interface SweepableProvider {
  readonly id: string;
  listOwnedSessions(opts: { owner: string; signal?: AbortSignal }): Promise<OwnedSession[]>;
  destroySession(sessionId: string, opts?: { signal?: AbortSignal }): Promise<void>;
}

export interface SweepResult {
  found: OwnedSession[];
  removed: string[];
  errors: Array<{ session_id: string; message: string }>;
}

/** Removes this owner's sessions whose expiry has passed (all of them with `includeUnexpired`). */
export async function sweepExpiredSessions(
  provider: SweepableProvider,
  opts: { owner: string; now?: Date; dryRun?: boolean; includeUnexpired?: boolean; signal?: AbortSignal },
): Promise<SweepResult> {
  const now = (opts.now ?? new Date()).getTime();
  const found = await provider.listOwnedSessions({
    owner: opts.owner,
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  const due = found.filter(
    (s) => opts.includeUnexpired || (s.expires_at !== null && Date.parse(s.expires_at) <= now),
  );
  const removed: string[] = [];
  const errors: SweepResult["errors"] = [];
  for (const s of due) {
    if (opts.dryRun) continue;
    try {
      await provider.destroySession(s.session_id, opts.signal ? { signal: opts.signal } : {});
      removed.push(s.session_id);
    } catch (error) {
      errors.push({ session_id: s.session_id, message: (error as Error).message });
    }
  }
  return { found, removed, errors };
}
