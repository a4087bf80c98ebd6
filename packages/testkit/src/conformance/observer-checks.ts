// Operation events reported to an observer.
import { randomUUID } from "node:crypto";
import { type RunnerOperationEvent, RunnerOperationEventSchema, withObserver } from "@roder/runner-contract";
import { expect } from "vitest";
import type { ConformanceSuite } from "./conformance-suite.js";

/** One event per operation, with no secret or argument in it. */
export function observerChecks(suite: ConformanceSuite): void {
  const { check, options, secrets, opened, id } = suite;
  check(
    "reports one event per operation to an observer, with no secret or argument in it",
    async () => {
      const events: RunnerOperationEvent[] = [];
      const observed = withObserver(await options.createProvider(), (e) => events.push(e));
      const marker = `arg-marker-${randomUUID()}`;
      const s = await observed.createSession(suite.destination);
      opened.push(s);
      await s.writeFile({ path: "observed.bin", contents: new Uint8Array(777) });
      expect((await s.readFile({ path: "observed.bin" })).contents.length).toBe(777);
      await s.runCommand({ command_id: id(), program: "echo", args: [marker], env: [["M", marker]] });
      await s.readFile({ path: `missing-${marker}` }).catch(() => {});
      await s.close();
      const ops = events.map((e) => `${e.operation}:${e.outcome}`);
      expect(ops).toEqual([
        "createSession:ok",
        "writeFile:ok",
        "readFile:ok",
        "runCommand:ok",
        "readFile:error",
        "close:ok",
      ]);
      for (const e of events) {
        expect(RunnerOperationEventSchema.parse(e)).toEqual(e);
        expect(e.provider).toBe(suite.provider.id);
      }
      expect(events[1]!.bytes_out).toBe(777);
      expect(events[2]!.bytes_in).toBe(777);
      expect(events[4]!.error_code).toBe("not_found");
      const all = JSON.stringify(events);
      expect(all).not.toContain(marker);
      for (const secret of secrets) expect(all).not.toContain(secret);
    },
    60_000,
  );
}
