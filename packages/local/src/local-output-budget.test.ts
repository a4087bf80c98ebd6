import { afterAll, describe, expect, it } from "vitest";
import { SESSION_RETAINED_OUTPUT_BYTES } from "./local-commands.js";
import { createLocalProvider } from "./local-provider.js";

// Issue 15 item 3: output retained for late followers is bounded per session, across its commands (each
// command's own cap is 16 MiB; six of them would otherwise hold 96 MiB).
const MiB = 1024 * 1024;
const provider = createLocalProvider();
const session = await provider.createSession({ config: { isolation: "none" } });
afterAll(async () => {
  await session.close();
});

async function replayed(commandId: string): Promise<number> {
  const h = await session.attachCommand(commandId);
  // The replay is queued at once; detaching ends the stream after it.
  await h.detach!();
  let n = 0;
  for await (const c of h.output) n += c.data.length;
  return n;
}

describe("retained output per session", () => {
  it("stays under the session's budget however many commands print, each keeping its newest output", async () => {
    const ids = Array.from({ length: 6 }, (_, i) => `flood-${i}`);
    for (const [i, id] of ids.entries()) {
      const h = await session.startCommand({
        command_id: id,
        program: "sh",
        args: ["-c", `head -c ${16 * MiB} /dev/zero; touch .done-${i}; exec sleep 120`],
      });
      await h.detach!();
    }
    for (let tries = 0; ; tries++) {
      const r = await session.runCommand({ command_id: `ls-${tries}`, program: "sh", args: ["-c", "ls -a"] });
      if (ids.every((_, i) => r.stdout.includes(`.done-${i}`))) break;
      expect(tries).toBeLessThan(600);
      await new Promise((r) => setTimeout(r, 100));
    }
    const sizes = await Promise.all(ids.map(replayed));
    const total = sizes.reduce((a, b) => a + b, 0);
    // Over the budget by at most one chunk per command (a log keeps its newest chunk).
    expect(total).toBeLessThanOrEqual(SESSION_RETAINED_OUTPUT_BYTES + ids.length * MiB);
    expect(total).toBeGreaterThan(SESSION_RETAINED_OUTPUT_BYTES / 2);
    // Each command keeps its newest output: every one can still be followed.
    for (const n of sizes) expect(n).toBeGreaterThan(0);
    // What was dropped is said: the replay offset counts it.
    const last = await session.attachCommand("flood-0");
    expect(last.replayOffset!.stdout + sizes[0]!).toBe(16 * MiB);
    await last.detach!();
    for (const id of ids) await session.cancelCommand(id);
  }, 180_000);
});
