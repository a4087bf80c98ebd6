// Declaration, persistence, sweeping and closing.
import {
  codecs,
  RunnerError,
  type RunnerSessionState,
  sweepExpiredSessions,
  UnsupportedCapabilityError,
} from "@roder/runner-contract";
import { expect } from "vitest";
import { type ConformanceSuite, thrown } from "./conformance-suite.js";

/** The provider declares its capabilities as wire data, and its id. */
export function declarationChecks(suite: ConformanceSuite): void {
  const { check } = suite;
  check("declares capabilities as wire data and an id", async () => {
    const caps = suite.provider.capabilities();
    expect(codecs.RunnerCapabilities.decode(codecs.RunnerCapabilities.encode(caps))).toEqual(caps);
    expect(suite.provider.id).toBe(suite.destination.provider_id);
    expect(caps.command_exec).toBe(true);
  });
}

/** Snapshots, and resuming from a persisted state in a new provider instance. */
export function persistenceChecks(suite: ConformanceSuite): void {
  const { check, options, secrets, opened, id } = suite;
  check(
    "snapshots and restores the workspace",
    async () => {
      const caps = suite.provider.capabilities();
      if (!caps.snapshots) {
        expect(UnsupportedCapabilityError.isInstance(await thrown(() => suite.session.snapshot()))).toBe(
          true,
        );
        return;
      }
      await suite.session.writeFile({ path: "snap/state.txt", contents: new TextEncoder().encode("before") });
      const snap = await suite.session.snapshot();
      expect(snap).not.toBeNull();
      expect(snap!.provider_id).toBe(suite.provider.id);
      await suite.session.writeFile({ path: "snap/state.txt", contents: new TextEncoder().encode("after") });
      const state: RunnerSessionState = {
        ...codecs.RunnerSessionState.decode(codecs.RunnerSessionState.encode(suite.session.state())),
        snapshot: snap,
      };
      const other = await (await (options.createResumeProvider ?? options.createProvider)()).resumeSession(
        codecs.RunnerSessionState.decode(codecs.RunnerSessionState.encode(state)),
      );
      opened.push(other);
      expect(new TextDecoder().decode((await other.readFile({ path: "snap/state.txt" })).contents)).toBe(
        "before",
      );
      const text = JSON.stringify(snap) + codecs.RunnerSessionState.encode(other.state());
      for (const s of secrets) expect(text).not.toContain(s);
    },
    120_000,
  );

  check(
    "resumes from a persisted state in a new provider instance",
    async () => {
      await suite.session.writeFile({
        path: "resume/x.txt",
        contents: new TextEncoder().encode("still here"),
      });
      const persisted = codecs.RunnerSessionState.encode(suite.session.state());
      const fresh = await (options.createResumeProvider ?? options.createProvider)();
      const again = await fresh.resumeSession(codecs.RunnerSessionState.decode(persisted));
      expect(again.state().session_id).toBe(suite.session.state().session_id);
      expect(new TextDecoder().decode((await again.readFile({ path: "resume/x.txt" })).contents)).toBe(
        "still here",
      );
      const r = await again.runCommand({ command_id: id(), program: "cat", args: ["resume/x.txt"] });
      expect(r.stdout).toBe("still here");
    },
    60_000,
  );
}

/** The provider's sweeper lists and removes this owner's sessions. */
export function sweeperChecks(suite: ConformanceSuite): void {
  const { check, options, opened, id } = suite;
  check(
    "its sweeper lists this owner's sessions and removes one",
    async () => {
      if (!options.sweeper) return;
      const sweeper = await options.sweeper.create();
      const owner = options.sweeper.owner;
      const s = await suite.provider.createSession(suite.destination);
      opened.push(s);
      const sid = s.state().session_id;
      const listed = await sweeper.listOwnedSessions({ owner });
      const mine = listed.find((o) => o.session_id === sid);
      expect(mine, `${sid} in ${JSON.stringify(listed)}`).toBeDefined();
      expect(mine!.expires_at === null || !Number.isNaN(Date.parse(mine!.expires_at))).toBe(true);
      expect(await sweeper.listOwnedSessions({ owner: `someone-else-${id()}` })).toEqual([]);
      // Nothing has expired yet: a sweep of expired sessions removes nothing; a dry run of all finds it.
      const now = await sweepExpiredSessions(sweeper, { owner, now: new Date(Date.now() - 1000) });
      expect(now.removed.filter((r) => r === sid)).toEqual([]);
      const dry = await sweepExpiredSessions(sweeper, { owner, includeUnexpired: true, dryRun: true });
      expect(dry.found.map((o) => o.session_id)).toContain(sid);
      expect(dry.removed).toEqual([]);
      await sweeper.destroySession(sid);
      expect((await sweeper.listOwnedSessions({ owner })).map((o) => o.session_id)).not.toContain(sid);
      const after = await thrown(async () => {
        const again = await (await (options.createResumeProvider ?? options.createProvider)()).resumeSession(
          s.state(),
        );
        await again.runCommand({ command_id: id(), program: "true" });
      });
      expect(RunnerError.isInstance(after), String(after)).toBe(true);
    },
    120_000,
  );
}

/** close is idempotent; later calls fail typed. */
export function closeChecks(suite: ConformanceSuite): void {
  const { check, options, opened, id } = suite;
  check(
    "close is idempotent and later calls fail with a typed error",
    async () => {
      const s = await suite.provider.createSession(suite.destination);
      opened.push(s);
      const state = s.state();
      await s.close();
      await s.close();
      const e = await thrown(() => s.runCommand({ command_id: id(), program: "true" }));
      expect(RunnerError.isInstance(e)).toBe(true);
      const r = await thrown(async () => {
        const again = await (await (options.createResumeProvider ?? options.createProvider)()).resumeSession(
          state,
        );
        await again.runCommand({ command_id: id(), program: "true" });
      });
      expect(RunnerError.isInstance(r), String(r)).toBe(true);
    },
    60_000,
  );
}
