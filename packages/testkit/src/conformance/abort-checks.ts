// Aborting: running commands, already-aborted signals, creates.
import { CancelledError, commandOutcome, RunnerError } from "@roder/runner-contract";
import { expect } from "vitest";
import { type ConformanceSuite, thrown } from "./conformance-suite.js";

/** An abort kills the command, an aborted signal has no effect, an aborted create leaves nothing. */
export function abortChecks(suite: ConformanceSuite): void {
  const { check, options, id } = suite;
  check(
    "aborting a running command kills it, on every path",
    async () => {
      for (const how of ["runCommand", "startCommand"] as const) {
        if (how === "startCommand" && !suite.session.startCommand) continue;
        const marker = `late-${id()}`;
        const ac = new AbortController();
        const request = {
          command_id: id(),
          program: "sh",
          args: ["-c", `sleep 2; echo x > ${marker}`],
        };
        const started = Date.now();
        const outcome =
          how === "runCommand"
            ? suite.session.runCommand(request, { signal: ac.signal })
            : suite.session.startCommand!(request, { signal: ac.signal }).then((h) => h.wait());
        setTimeout(() => ac.abort(), 300);
        const settled = await outcome.then(
          (r) => ({ ok: true as const, r }),
          (e: unknown) => ({ ok: false as const, e }),
        );
        expect(Date.now() - started, `${how}: answered promptly after the abort`).toBeLessThan(1900);
        if (settled.ok) {
          expect(settled.r.exit_code, how).toBeNull();
          expect(commandOutcome(settled.r).cancelled, how).toBe(true);
        } else expect(CancelledError.isInstance(settled.e), `${how}: ${settled.e}`).toBe(true);
        // The process really died: it never gets to write its marker.
        await new Promise((r) => setTimeout(r, 2500));
        const e = await thrown(() => suite.session.readFile({ path: marker }));
        expect(RunnerError.isInstance(e) && e.code === "not_found", `${how}: ${e}`).toBe(true);
      }
    },
    60_000,
  );

  check(
    "honours an already-aborted AbortSignal on every call, with no effect",
    async () => {
      const ac = new AbortController();
      ac.abort();
      const signal = ac.signal;
      const path = `aborted-${id()}.txt`;
      const calls: Array<[string, () => Promise<unknown>]> = [
        [
          "runCommand",
          () => suite.session.runCommand({ command_id: id(), program: "touch", args: [path] }, { signal }),
        ],
        ["writeFile", () => suite.session.writeFile({ path, contents: new Uint8Array([1]) }, { signal })],
        ["readFile", () => suite.session.readFile({ path: "." }, { signal })],
        ["createSession", () => suite.provider.createSession(suite.destination, { signal })],
      ];
      if (suite.provider.capabilities().snapshots)
        calls.push(["snapshot", () => suite.session.snapshot({ signal })]);
      if (suite.session.startCommand)
        calls.push([
          "startCommand",
          () => suite.session.startCommand!({ command_id: id(), program: "touch", args: [path] }, { signal }),
        ]);
      const before = options.countLiveSessions ? await options.countLiveSessions() : 0;
      for (const [name, call] of calls) {
        const e = await thrown(call);
        expect(CancelledError.isInstance(e), `${name}: ${e}`).toBe(true);
      }
      if (options.countLiveSessions) expect(await options.countLiveSessions()).toBe(before);
      const e = await thrown(() => suite.session.readFile({ path }));
      expect(RunnerError.isInstance(e) && e.code === "not_found", String(e)).toBe(true);
    },
    60_000,
  );

  check(
    "an aborted create leaves no sandbox behind",
    async () => {
      if (!options.countLiveSessions) return;
      const before = await options.countLiveSessions();
      for (const delay of [0, 5, 25, 100, 400]) {
        const ac = new AbortController();
        const pending = suite.provider.createSession(suite.destination, { signal: ac.signal });
        setTimeout(() => ac.abort(), delay);
        const r = await pending.then(
          (s) => ({ ok: true as const, s }),
          (e: unknown) => ({ ok: false as const, e }),
        );
        // Either the create won the race (then it is an ordinary session) or it failed typed and cleaned up.
        if (r.ok) await r.s.close();
        else expect(CancelledError.isInstance(r.e), `abort after ${delay} ms: ${r.e}`).toBe(true);
        expect(await options.countLiveSessions(), `abort after ${delay} ms`).toBe(before);
      }
    },
    120_000,
  );
}
