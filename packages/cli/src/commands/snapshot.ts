import { readFileSync } from "node:fs";
import { codecs } from "@roder/runner-contract";
import { CliError, type CommandArgs, EXIT } from "../cli-base.js";
import type { SessionKit } from "../cli-session.js";
import { humanBytes } from "../progress.js";
import {
  canDelete,
  deleteHttpSnapshot,
  findSnapshot,
  forgetSnapshot,
  type IndexedSnapshot,
  listSnapshots,
  recordSnapshot,
} from "../snapshots.js";
import { errnoOf } from "../sys-errors.js";

/** `roder-runner snapshot`: take one of a kept session, list, restore and delete those this CLI took. */
export async function snapshotCommand(a: CommandArgs, kit: SessionKit): Promise<number> {
  const { v, positionals, io, registry } = a;
  const { abort, interrupt, stopSignals, checkState, writeState, checkStateOut, withSession } = kit;
  const [sub, ref] = positionals;
  if (sub === undefined) {
    if (typeof v.session !== "string")
      throw new CliError("snapshot needs --session FILE (or list, restore ID, rm ID)", EXIT.usage);
    return withSession(async (session) => {
      const snap = await session.snapshot({ signal: abort.signal });
      if (snap) {
        try {
          recordSnapshot(io.env, snap, session.state());
        } catch (error) {
          io.stderr(
            `roder-runner: warning: the snapshot was taken but not recorded for 'snapshot list': ${(error as Error).message}\n`,
          );
        }
      }
      io.stdout(`${snap ? codecs.RunnerSnapshotRef.encodePretty(snap) : "null"}\n`);
      return EXIT.ok;
    });
  }
  if (sub === "list") {
    const all = listSnapshots(io.env);
    if (v.json) {
      io.stdout(
        `${JSON.stringify(
          all.map((e) => JSON.parse(codecs.RunnerSnapshotRef.encode(e.ref))),
          null,
          2,
        )}\n`,
      );
      return EXIT.ok;
    }
    const rows = all.map((e) => {
      const m = (e.ref.metadata ?? {}) as { size?: unknown; created_at?: unknown };
      return [
        e.ref.snapshot_id,
        e.ref.provider_id,
        typeof m.size === "number" ? humanBytes(m.size) : "-",
        typeof m.created_at === "string" ? m.created_at : "-",
        e.state.session_id || "-",
      ];
    });
    const head = ["SNAPSHOT", "PROVIDER", "SIZE", "CREATED", "FROM SESSION"];
    const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
    for (const r of [head, ...rows])
      io.stdout(
        `${r
          .map((c, i) => c.padEnd(w[i]!))
          .join("  ")
          .trimEnd()}\n`,
      );
    return EXIT.ok;
  }
  if (sub !== "restore" && sub !== "rm")
    throw new CliError(`unknown snapshot command '${sub}'`, EXIT.usage, "snapshot list | restore ID | rm ID");
  if (!ref) throw new CliError(`snapshot ${sub} needs a snapshot id or ref file`, EXIT.usage);
  const entry = resolveSnapshot(a, ref);
  if (sub === "rm") {
    const provider = registry.get(entry.ref.provider_id);
    if (canDelete(provider)) await provider.deleteSnapshot(entry.ref);
    else if (entry.ref.provider_id === "http") {
      checkState(entry.state, ref);
      await deleteHttpSnapshot(entry.ref, io.env);
    } else
      throw new CliError(
        `provider '${entry.ref.provider_id}' cannot delete snapshots from here`,
        EXIT.provider,
        "delete it with the provider's own tools; 'snapshot rm' then only forgets it",
      );
    forgetSnapshot(io.env, entry.ref.snapshot_id);
    return EXIT.ok;
  }
  // restore: a new session from the snapshot, its state written like --keep (stdout by default).
  checkState(entry.state, ref);
  checkStateOut();
  for (const s of stopSignals) process.on(s, interrupt);
  try {
    const session = await registry.resumeSession(entry.state, { signal: abort.signal });
    try {
      if (abort.signal.aborted) throw new CliError("interrupted", EXIT.interrupted);
      writeState(session, "stdout");
    } catch (error) {
      await session.close().catch(() => {});
      throw error;
    }
    return EXIT.ok;
  } finally {
    for (const s of stopSignals) process.off(s, interrupt);
  }
}

/** A snapshot id of the index, or a file holding a `RunnerSnapshotRef` (from `snapshot`) or a state with one. */
function resolveSnapshot(a: CommandArgs, ref: string): IndexedSnapshot {
  const { positionals, command, io } = a;

  const indexed = findSnapshot(io.env, ref);
  if (indexed) return indexed;
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(readFileSync(ref, "utf8")) as Record<string, unknown>;
  } catch (error) {
    throw new CliError(
      `'${ref}' is neither a snapshot in the index nor a readable JSON file${errnoOf(error) ? ` (${errnoOf(error)!.code})` : ""}`,
      EXIT.config,
      "'roder-runner snapshot list' shows the snapshots taken from this CLI",
    );
  }
  if (raw.snapshot && typeof raw.session_id === "string") {
    const state = codecs.RunnerSessionState.parse(raw);
    return { ref: state.snapshot!, state };
  }
  const snap = codecs.RunnerSnapshotRef.parse(raw);
  const known = findSnapshot(io.env, snap.snapshot_id);
  if (known) return known;
  if (snap.provider_id === "unix-local" && command === "snapshot" && positionals[0] === "restore")
    throw new CliError(
      `snapshot '${snap.snapshot_id}' is not in this CLI's index: a unix-local snapshot restores with the state of the session it was taken from`,
      EXIT.config,
      "restore it by id as the user who took it (same RODER_RUNNER_STATE_DIR), or pass a session state whose snapshot field is this ref",
    );
  return {
    ref: snap,
    state: {
      provider_id: snap.provider_id,
      session_id: "",
      destination_id: "restored",
      snapshot: snap,
      metadata: {},
    },
  };
}
