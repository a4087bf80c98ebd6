import { readText } from "@roder/runner-contract";
import { afterAll, describe, expect, it } from "vitest";
import { createLocalProvider } from "./local-provider.js";
import type { LocalSession } from "./local-session.js";

// The short path the root README shows: what the types allow, the runtime does.
const provider = createLocalProvider();
const sessions: LocalSession[] = [];
afterAll(async () => {
  for (const s of sessions) await s.close().catch(() => {});
});

describe("the short path on the local provider", () => {
  it("createSession({ config }) generates the destination id and takes the provider's own id", async () => {
    const a = await provider.createSession({ config: { isolation: "none" } });
    const b = await provider.createSession({ config: { isolation: "none" } });
    sessions.push(a, b);
    expect(a.state().provider_id).toBe("unix-local");
    expect(a.state().destination_id).toMatch(/^dest-/);
    expect(a.state().destination_id).not.toBe(b.state().destination_id);
    await expect(provider.createSession({ provider_id: "fly", config: {} })).rejects.toThrow(
      /destination is for provider 'fly'/,
    );
  });

  it("runs a command with only a program, writes text and reads it back, streams without `!`", async () => {
    const s = await provider.createSession({ config: { isolation: "none" } });
    sessions.push(s);
    const r = await s.runCommand({ program: "sh", args: ["-c", "echo hi; pwd"] });
    expect(r.command_id).toMatch(/^cmd-/);
    expect(r.exit_code).toBe(0);
    expect(r.stdout.split("\n")[0]).toBe("hi");
    await s.writeFile({ path: "notes/a.txt", contents: "héllo\n" });
    expect(await readText(s, "notes/a.txt")).toBe("héllo\n");
    expect([...(await s.readFile({ path: "notes/a.txt" })).contents]).toEqual([
      ...new TextEncoder().encode("héllo\n"),
    ]);
    const handle = await s.startCommand({ program: "cat", args: ["notes/a.txt"] });
    let out = "";
    for await (const chunk of handle.output) out += new TextDecoder().decode(chunk.data);
    expect([out, (await handle.wait()).exit_code]).toEqual(["héllo\n", 0]);
    expect((await s.exposePort({ port: 8123 })).port).toBe(8123);
  });
});
