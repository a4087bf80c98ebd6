// Commands: results, output, argv, env and cwd; timeouts and cancellation; streaming.
import { CancelledError, commandOutcome, RunnerError } from "@roder/runner-contract";
import { expect } from "vitest";
import { type ConformanceSuite, thrown } from "./conformance-suite.js";

/** Exit codes, stdout and stderr, env and cwd, argv and output bytes. */
export function commandChecks(suite: ConformanceSuite): void {
  const { check, id, sh } = suite;
  check("returns exit codes as results, not errors", async () => {
    for (const code of [0, 1, 3, 42, 255]) {
      const r = await sh(`exit ${code}`);
      expect(r.exit_code).toBe(code);
    }
    const missing = await suite.session.runCommand({
      command_id: id(),
      program: "definitely-not-a-program-xyz",
    });
    expect(missing.exit_code).not.toBe(0);
  });

  check("separates stdout and stderr and echoes the command id", async () => {
    const cid = id();
    const r = await suite.session.runCommand({
      command_id: cid,
      program: "sh",
      args: ["-c", "printf out; printf err >&2"],
    });
    expect(r).toEqual({ command_id: cid, exit_code: 0, stdout: "out", stderr: "err" });
  });

  check("passes env pairs and runs in the requested cwd", async () => {
    await suite.session.writeFile({ path: "sub/dir/marker.txt", contents: new TextEncoder().encode("m") });
    const r = await suite.session.runCommand({
      command_id: id(),
      program: "sh",
      args: ["-c", 'printf "%s|%s|" "$FOO" "$BAR"; pwd'],
      cwd: "sub/dir",
      env: [
        ["FOO", "a b$c"],
        ["BAR", "ünï"],
      ],
    });
    expect(r.exit_code).toBe(0);
    expect(r.stdout.startsWith("a b$c|ünï|")).toBe(true);
    expect(r.stdout.trim().endsWith("/sub/dir")).toBe(true);
  });

  check("delivers hostile argv byte for byte", async () => {
    const args = [
      "",
      " ",
      "'",
      '"',
      "\\",
      "$HOME",
      "`id`",
      "$(id)",
      "a\nb",
      "tab\there",
      "-n",
      "--",
      "ünïcødé 😀",
      "*",
      ";rm -rf /",
      "%s%n",
    ];
    const r = await suite.session.runCommand({
      command_id: id(),
      program: "node",
      args: ["-e", "process.stdout.write(JSON.stringify(process.argv.slice(1)))", "--", ...args],
    });
    expect(r.exit_code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual(args);
  });

  check("decodes non-UTF-8 output lossily", async () => {
    const r = await suite.session.runCommand({
      command_id: id(),
      program: "node",
      args: ["-e", "process.stdout.write(Buffer.from([0x61, 0xff, 0x62]))"],
    });
    expect(r.stdout).toBe("a\ufffdb");
  });
}

/** timeout_ms, cancelCommand and an AbortSignal. */
export function commandControlChecks(suite: ConformanceSuite): void {
  const { check, id } = suite;
  check(
    "kills a command at timeout_ms and says so",
    async () => {
      const started = Date.now();
      const r = await suite.session.runCommand({
        command_id: id(),
        program: "sh",
        args: ["-c", "echo before; sleep 30; echo after"],
        timeout_ms: 1000,
      });
      expect(Date.now() - started).toBeLessThan(20_000);
      expect(r.exit_code).toBeNull();
      expect(r.stdout).toContain("before");
      expect(r.stdout).not.toContain("after");
      expect(commandOutcome(r).timedOut).toBe(true);
    },
    60_000,
  );

  check(
    "cancels a long command",
    async () => {
      const caps = suite.provider.capabilities();
      const cid = id();
      if (!caps.cancellation) {
        expect(await suite.session.cancelCommand(cid)).toBe(false);
        return;
      }
      const running = suite.session.runCommand({ command_id: cid, program: "sh", args: ["-c", "sleep 30"] });
      let cancelled = false;
      for (let i = 0; i < 100 && !cancelled; i++) {
        await new Promise((r) => setTimeout(r, 100));
        cancelled = await suite.session.cancelCommand(cid);
      }
      expect(cancelled).toBe(true);
      const r = await running;
      expect(r.exit_code).toBeNull();
      expect(await suite.session.cancelCommand(cid)).toBe(false);
      expect(await suite.session.cancelCommand("never-started")).toBe(false);
    },
    60_000,
  );

  check("honours an AbortSignal", async () => {
    const ac = new AbortController();
    ac.abort();
    const e = await thrown(() =>
      suite.session.runCommand({ command_id: id(), program: "true" }, { signal: ac.signal }),
    );
    expect(CancelledError.isInstance(e) || RunnerError.isInstance(e)).toBe(true);
  });
}

/** Output streamed through startCommand. */
export function streamingChecks(suite: ConformanceSuite): void {
  const { check, id } = suite;
  check(
    "streams output through startCommand when the session has it",
    async () => {
      if (!suite.session.startCommand) return;
      const handle = await suite.session.startCommand({
        command_id: id(),
        program: "sh",
        args: ["-c", "echo one; sleep 1; echo two >&2; sleep 1; echo three"],
      });
      const seen: string[] = [];
      let firstAt = 0;
      const started = Date.now();
      for await (const chunk of handle.output) {
        if (!firstAt) firstAt = Date.now() - started;
        seen.push(`${chunk.stream}:${new TextDecoder().decode(chunk.data)}`);
      }
      const result = await handle.wait();
      expect(result.exit_code).toBe(0);
      expect(result.stdout).toBe("one\nthree\n");
      expect(seen.join("")).toContain("stderr:two");
      // The first chunk came before the command ended (about 2 s).
      expect(firstAt).toBeLessThan(1500);
    },
    60_000,
  );
}
