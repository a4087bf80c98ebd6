import { createLocalProvider } from "@roder/runner-local";
import { type E2bStandIn, startE2bStandIn } from "@roder/runner-testkit";
import { CommandExitError, Sandbox } from "e2b";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

let standIn: E2bStandIn;
const opts = () => ({
  apiKey: standIn.apiKey,
  apiUrl: standIn.apiUrl,
  sandboxUrl: standIn.sandboxUrl,
  domain: standIn.domain,
});

beforeAll(async () => {
  standIn = await startE2bStandIn({ backend: createLocalProvider() });
});
afterAll(async () => {
  await standIn.stop();
});

describe("E2B stand-in driven by the unmodified e2b SDK", () => {
  it("creates a sandbox, runs commands (streaming, exit errors), moves files, lists by metadata and kills", async () => {
    const sbx = await Sandbox.create("base", { ...opts(), metadata: { roder_owner: "t1" } });
    try {
      const chunks: string[] = [];
      const ok = await sbx.commands.run("echo hello; echo oops >&2", {
        onStdout: (d) => void chunks.push(d),
      });
      expect(ok.exitCode).toBe(0);
      expect(ok.stdout).toBe("hello\n");
      expect(ok.stderr).toBe("oops\n");
      expect(chunks.join("")).toBe("hello\n");
      const err = await sbx.commands.run("exit 7").catch((e) => e);
      expect(err).toBeInstanceOf(CommandExitError);
      expect((err as CommandExitError).exitCode).toBe(7);
      const pwd = await sbx.commands.run("pwd", { cwd: "/home/user" });
      expect(pwd.stdout.trim()).toBe("/home/user");
      await sbx.files.write("/home/user/data/a.bin", new Uint8Array([0, 1, 2, 255]).buffer as ArrayBuffer);
      expect([...(await sbx.files.read("/home/user/data/a.bin", { format: "bytes" }))]).toEqual([
        0, 1, 2, 255,
      ]);
      await sbx.files.rename("/home/user/data/a.bin", "/home/user/data/b.bin");
      expect(await sbx.files.exists("/home/user/data/b.bin")).toBe(true);
      const list = await Sandbox.list({ ...opts(), query: { metadata: { roder_owner: "t1" } } }).nextItems();
      expect(list.map((s) => s.sandboxId)).toContain(sbx.sandboxId);
      const bg = await sbx.commands.run("sleep 30", { background: true });
      expect(await sbx.commands.kill(bg.pid)).toBe(true);
      const killed = await bg.wait().catch((e) => e);
      expect((killed as CommandExitError).exitCode).not.toBe(0);
    } finally {
      await sbx.kill();
    }
    expect(standIn.sandboxes()).toHaveLength(0);
  });

  it("pauses and resumes through connect", async () => {
    const sbx = await Sandbox.create("base", opts());
    await sbx.files.write("/home/user/keep.txt", "kept");
    await sbx.pause();
    expect(standIn.sandboxes()[0]?.state).toBe("paused");
    const again = await Sandbox.connect(sbx.sandboxId, opts());
    expect(await again.files.read("/home/user/keep.txt")).toBe("kept");
    await again.kill();
  });

  it("rejects a wrong API key with the SDK's authentication error", async () => {
    const e = await Sandbox.create("base", { ...opts(), apiKey: "e2b_wrong" }).catch((x) => x);
    expect((e as Error).name).toMatch(/Authentication/);
  });
});
