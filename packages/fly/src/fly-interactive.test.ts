import { UnsupportedCapabilityError } from "@roder/runner-contract";
import { createLocalProvider } from "@roder/runner-local";
import { type FlyStandIn, startFlyStandIn } from "@roder/runner-testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createFlyProvider } from "./fly-provider.js";

// Exec mode has no channel to a running command's stdin and no terminal: startCommand refuses both with a
// typed error instead of running the command without them.
let standIn: FlyStandIn;
beforeAll(async () => {
  standIn = await startFlyStandIn({ backend: createLocalProvider() });
}, 60_000);
afterAll(async () => {
  await standIn?.stop();
});

async function caught(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  throw new Error("expected a failure");
}

describe("fly exec mode and interactive commands", () => {
  it("startCommand with stdin: true or pty rejects with UnsupportedCapabilityError and runs nothing", async () => {
    const session = await createFlyProvider({
      baseUrl: standIn.baseUrl,
      env: { FLY_API_TOKEN: standIn.token },
    }).createSession({
      id: "fly-interactive",
      provider_id: "fly",
      config: { app: "roder-test", image: "debian:bookworm-slim" },
      default_manifest: { entries: [], mounts: [] },
    });
    try {
      const execs = () => standIn.bodies.filter((b) => b.path.endsWith("/exec")).length;
      const before = execs();
      const stdin = await caught(
        session.startCommand({
          command_id: "in",
          program: "sh",
          args: ["-c", "touch stdin-ran"],
          stdin: true,
        }),
      );
      expect(UnsupportedCapabilityError.isInstance(stdin), String(stdin)).toBe(true);
      expect(stdin).toMatchObject({ capability: "stdin", providerId: "fly" });
      expect(String(stdin)).toMatch(/stdin/);
      const pty = await caught(
        session.startCommand({
          command_id: "tty",
          program: "sh",
          args: ["-c", "touch pty-ran"],
          pty: { cols: 80, rows: 24 },
        }),
      );
      expect(UnsupportedCapabilityError.isInstance(pty), String(pty)).toBe(true);
      expect(pty).toMatchObject({ capability: "pty", providerId: "fly" });
      // Nothing reached the machine, and neither command ran.
      expect(execs()).toBe(before);
      const ls = await session.runCommand({
        command_id: "ls",
        program: "sh",
        args: ["-c", "ls *-ran 2>&1; true"],
      });
      expect(ls.stdout).not.toMatch(/stdin-ran|pty-ran/);
      // stdin: false is the default: the command starts and ends as usual.
      const h = await session.startCommand({
        command_id: "plain",
        program: "echo",
        args: ["plain"],
        stdin: false,
      });
      expect((await h.wait()).stdout).toBe("plain\n");
      // The published limits of exec mode say so (the default; agent mode's take both).
      const provider = createFlyProvider();
      expect(provider.limits().notes).toMatch(/no stdin to a running command and no terminal/);
      expect(provider.limits({ config: { app: "a", image: "i", mode: "exec" } })).toEqual(provider.limits());
      const agent = provider.limits({ config: { app: "a", image: "i", image_has_agent: true } });
      expect(agent.notes).toMatch(/stdin and terminals of a running command through the agent/);
      expect(agent.cancellation).toBe("native");
    } finally {
      await session.close();
    }
  }, 60_000);
});
