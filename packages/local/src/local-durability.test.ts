import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { createLocalProvider } from "./local-provider.js";

describe("unix-local writeFile durability", () => {
  it("a concurrent reader sees the old or the new content, never a partial file", async () => {
    const session = await createLocalProvider().createSession({
      id: "dur",
      provider_id: "unix-local",
      config: {},
      default_manifest: { entries: [], mounts: [] },
    });
    try {
      const size = 2 * 1024 * 1024;
      const a = new Uint8Array(size).fill(97);
      const b = new Uint8Array(size).fill(98);
      await session.writeFile({ path: "f.bin", contents: a });
      const host = join((session.state().metadata as { host_root: string }).host_root, "f.bin");
      let reads = 0;
      let done = false;
      const reader = (async () => {
        while (!done) {
          const buf = readFileSync(host);
          reads++;
          expect(buf.length).toBe(size);
          expect(buf[0] === buf[size - 1] && buf.indexOf(buf[0] === 97 ? 98 : 97) === -1).toBe(true);
          await new Promise((r) => setImmediate(r));
        }
      })();
      for (let i = 0; i < 40; i++) await session.writeFile({ path: "f.bin", contents: i % 2 ? a : b });
      done = true;
      await reader;
      expect(reads).toBeGreaterThan(5);
      // No temp files are left next to the target.
      const ls = await session.runCommand({ command_id: "ls", program: "ls", args: ["-A"] });
      expect(ls.stdout.trim()).toBe("f.bin");
    } finally {
      await session.close();
    }
  }, 60_000);
});
