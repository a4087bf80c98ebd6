// The published limits and what follows from them: attach, detach, pause.
import { CommandNotFoundError, codecs, RunnerError, RunnerLimitsSchema } from "@roder/runner-contract";
import { expect } from "vitest";
import { type ConformanceSuite, text, thrown } from "./conformance-suite.js";

/** The limits agree with the session; detach and attach again; pause and resume. */
export function limitsChecks(suite: ConformanceSuite): void {
  const { check, options, opened, id, limitsOf } = suite;
  check("publishes limits that agree with the session's methods", async () => {
    const limits = limitsOf();
    expect(limits.provider_id).toBe(suite.provider.id);
    expect(RunnerLimitsSchema.parse(suite.provider.limits()).provider_id).toBe(suite.provider.id);
    expect(typeof suite.session.startCommand === "function").toBe(limits.streaming === "native");
    expect(typeof suite.session.attachCommand === "function").toBe(limits.attach !== "none");
    expect(typeof suite.session.pause === "function").toBe(limits.pause !== "none");
    expect(limits.reattach).toBe(limits.attach === "any-client");
    expect(limits.attach === "none").toBe(limits.attach_replay === null);
    expect(suite.provider.capabilities().cancellation).toBe(limits.cancellation !== "none");
    // A fixed scope is the one the suite was told; `destination` means the destination's config decides.
    if (limits.file_scope === "workspace" || limits.file_scope === "sandbox")
      expect(limits.file_scope).toBe(options.fileScope ?? "workspace");
  });

  check(
    "detaches from a running command and attaches to it again",
    async () => {
      const limits = limitsOf();
      if (limits.attach === "none" || !suite.session.startCommand || !suite.session.attachCommand) return;
      const cid = id();
      const h = await suite.session.startCommand({
        command_id: cid,
        program: "sh",
        args: ["-c", "echo one; sleep 1; echo two; sleep 1; echo three"],
      });
      const it = h.output[Symbol.asyncIterator]();
      let first = "";
      while (!first.includes("one")) {
        const r = await it.next();
        if (r.done) break;
        first += text(r.value.data);
      }
      expect(first).toContain("one");
      await h.detach!();
      // Detached, the command goes on; wait() still answers (following it again where it must).
      const detachedResult = h.wait();
      // any-client: a new provider instance, from the persisted state, as another process would.
      const target =
        limits.attach === "any-client"
          ? await (await (options.createResumeProvider ?? options.createProvider)()).resumeSession(
              codecs.RunnerSessionState.decode(codecs.RunnerSessionState.encode(suite.session.state())),
            )
          : suite.session;
      const again = await target.attachCommand!(cid);
      expect(again.commandId).toBe(cid);
      let seen = "";
      for await (const chunk of again.output) seen += text(chunk.data);
      const result = await again.wait();
      expect(result.exit_code).toBe(0);
      expect(seen).toContain("three");
      if (limits.attach_replay === "retained") {
        expect(seen).toBe("one\ntwo\nthree\n");
        expect(result.stdout).toBe("one\ntwo\nthree\n");
      } else expect(seen).not.toContain("one");
      expect((await detachedResult).exit_code).toBe(0);
      const missing = await thrown(() => target.attachCommand!(`never-started-${id()}`));
      expect(CommandNotFoundError.isInstance(missing), String(missing)).toBe(true);
    },
    60_000,
  );

  check(
    "pauses, refuses calls while paused, and resumes with its files from the persisted state",
    async () => {
      const limits = limitsOf();
      if (limits.pause === "none" || !suite.session.pause) return;
      const s = await suite.provider.createSession(suite.destination);
      opened.push(s);
      await s.writeFile({ path: "paused/kept.txt", contents: new TextEncoder().encode("kept") });
      await s.pause!();
      const e = await thrown(() => s.runCommand({ command_id: id(), program: "true" }));
      expect(RunnerError.isInstance(e) && e.code === "session_paused", String(e)).toBe(true);
      const resumed = await (await (options.createResumeProvider ?? options.createProvider)()).resumeSession(
        codecs.RunnerSessionState.decode(codecs.RunnerSessionState.encode(s.state())),
      );
      opened.push(resumed);
      expect(text((await resumed.readFile({ path: "paused/kept.txt" })).contents)).toBe("kept");
      const r = await resumed.runCommand({ command_id: id(), program: "cat", args: ["paused/kept.txt"] });
      expect(r.stdout).toBe("kept");
      await resumed.close();
    },
    120_000,
  );
}
