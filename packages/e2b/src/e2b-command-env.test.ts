import { createLocalProvider } from "@roder/runner-local";
import { type E2bStandIn, startE2bStandIn } from "@roder/runner-testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createE2bProvider } from "./e2b-provider.js";
import type { E2bSession } from "./e2b-session.js";

// E2B runs every command through a login shell (`bash -l -c`, a PTY's `bash -i -l`); the stand-in's sandbox has
// Debian's /etc/profile, which sets PATH again, as E2B's image does. A command's env pairs must still reach it.
let standIn: E2bStandIn;
let session: E2bSession;

beforeAll(async () => {
  standIn = await startE2bStandIn({ backend: createLocalProvider() });
  session = await createE2bProvider({
    apiUrl: standIn.apiUrl,
    sandboxUrl: standIn.sandboxUrl,
    domain: standIn.domain,
    env: { E2B_API_KEY: standIn.apiKey },
  }).createSession({ config: { template: "base" } });
  await session.writeFile({
    path: "/tmp/roder-bin/roder-tool",
    contents: '#!/bin/sh\nprintf "tool:%s\\n" "$FOO"\n',
  });
  await session.runCommand({ program: "chmod", args: ["+x", "/tmp/roder-bin/roder-tool"] });
}, 60_000);
afterAll(async () => {
  await session?.close();
  await standIn?.stop();
});

const PATH = "/tmp/roder-bin:/usr/bin:/bin";
const ODD = `a b 'q' "d" $HOME \\ \n;|& é`;
const env: Array<[string, string]> = [
  ["PATH", PATH],
  ["FOO", ODD],
  ["EMPTY", ""],
  ["UID", "12345"],
];

describe("e2b: a command's env pairs reach the program through E2B's login shell", () => {
  for (const mode of ["pipes", "pty"] as const) {
    it(`${mode}: PATH as given (the program is found through it), values byte for byte, no carrier left`, async () => {
      const h = await session.startCommand({
        program: "sh",
        args: [
          "-c",
          'printf "%s|" "$PATH"; printenv FOO; printf "[%s]" "${EMPTY-unset}"; env | grep -c -e RODER_ENV_ -e __roder_; roder-tool',
        ],
        env,
        timeout_ms: 30_000,
        ...(mode === "pty" ? { pty: { cols: 200, rows: 24 } } : {}),
      });
      const r = await h.wait();
      expect(r.exit_code, r.stdout + r.stderr).toBe(0);
      const out = mode === "pty" ? r.stdout.replace(/\r\n/g, "\n") : r.stdout;
      expect(out).toBe(`${PATH}|${ODD}\n[]0\ntool:${ODD}\n`);
    });
  }

  it("the values are not on the command line envd was given (only in the process's env)", async () => {
    const h = await session.startCommand({
      program: "sleep",
      args: ["30"],
      env: [["SECRET_TOKEN", "canary-4f1e9b"]],
    });
    const listed = await session.sandbox.commands.list();
    const mine = listed.find((p) => p.args.join(" ").includes("sleep"));
    expect(mine).toBeDefined();
    expect(JSON.stringify([mine!.cmd, mine!.args])).not.toContain("canary-4f1e9b");
    expect(Object.values(mine!.envs)).toContain("canary-4f1e9b");
    await h.kill();
    await h.wait();
  });
});
