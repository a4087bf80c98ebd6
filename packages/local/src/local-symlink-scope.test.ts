import { PathOutsideWorkspaceError } from "@roder/runner-contract";
import { afterAll, describe, expect, it } from "vitest";
import { createLocalProvider } from "./local-provider.js";

// A workspace symlink whose absolute target exists only inside the sandbox (its private /tmp) leads there: it is
// not a missing file of the host's workspace.
const provider = createLocalProvider();
const opened: Array<{ close(): Promise<void> }> = [];
afterAll(async () => {
  for (const s of opened) await s.close();
});

describe("symlinks whose target exists only in the sandbox", () => {
  it("under bwrap: reads go through them, inside the sandbox; a write replaces the link", async () => {
    const s = await provider.createSession({ config: { isolation: "bwrap" } });
    opened.push(s);
    const made = await s.runCommand({
      command_id: "mk",
      program: "sh",
      args: [
        "-c",
        "mkdir -p /tmp/only-here && echo inside > /tmp/only-here/f && ln -s /tmp/only-here/f rd && ln -s /tmp/only-here/new wr && echo ok",
      ],
    });
    expect(made.stdout.trim()).toBe("ok");
    expect(new TextDecoder().decode((await s.readFile({ path: "rd" })).contents)).toBe("inside\n");
    // A write is atomic (a new file renamed into place): it replaces the link itself, as on every provider.
    await s.writeFile({ path: "wr", contents: "a new file\n" });
    const seen = await s.runCommand({
      command_id: "c",
      program: "sh",
      args: [
        "-c",
        "cat wr; test -L wr && echo link || echo file; test -e /tmp/only-here/new && echo there || echo absent",
      ],
    });
    expect(seen.stdout).toBe("a new file\nfile\nabsent\n");
  });

  it("without isolation: a dangling link that leads outside the workspace is refused, not a missing file", async () => {
    const s = await provider.createSession({ config: { isolation: "none" } });
    opened.push(s);
    await s.runCommand({
      command_id: "mk",
      program: "ln",
      args: ["-s", `/nonexistent-${Date.now()}/x`, "dangling"],
    });
    const e = await s.readFile({ path: "dangling" }).catch((x) => x);
    expect(PathOutsideWorkspaceError.isInstance(e), String(e)).toBe(true);
    const w = await s.writeFile({ path: "dangling", contents: "x" }).catch((x) => x);
    expect(PathOutsideWorkspaceError.isInstance(w), String(w)).toBe(true);
  });
});
