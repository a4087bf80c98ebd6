import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { CancelledError } from "@roder/runner-contract";
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

  it("an aborted 64 MiB writeFile rejects with CancelledError and leaves the old file, no temp file", async () => {
    const session = await createLocalProvider().createSession({
      id: "abort",
      provider_id: "unix-local",
      config: {},
      default_manifest: { entries: [], mounts: [] },
    });
    const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
    try {
      const size = 64 * 1024 * 1024;
      const versions = [0, 1, 2].map((v) => new Uint8Array(size).map((_, i) => (i * 31 + v * 7) & 255));
      const hashes = versions.map(sha);
      const host = (session.state().metadata as { host_root: string }).host_root;
      const onDisk = () => sha(readFileSync(join(host, "big.bin")));
      let current = 0;
      const t0 = performance.now();
      await session.writeFile({ path: "big.bin", contents: versions[current] as Uint8Array });
      const full = performance.now() - t0;
      expect(onDisk()).toBe(hashes[current]);

      // Abort points: already aborted, right away, then spread over the measured duration of a full write,
      // the last ones near its end (during the fsync and just before the rename).
      const delays: Array<number | "before"> = ["before", 0, 0];
      for (let k = 0; k < 12; k++) delays.push(Math.random() * full);
      for (const f of [0.8, 0.9, 0.95, 0.98, 1.0]) delays.push(f * full);
      let cancelled = 0;
      let completed = 0;
      for (const [n, delay] of delays.entries()) {
        const next = (current + 1 + (n % 2)) % 3;
        const controller = new AbortController();
        if (delay === "before") controller.abort();
        else setTimeout(() => controller.abort(), delay);
        const outcome = await session
          .writeFile(
            { path: "big.bin", contents: versions[next] as Uint8Array },
            { signal: controller.signal },
          )
          .then(
            () => "done" as const,
            (e: unknown) => e,
          );
        controller.abort();
        if (outcome === "done") {
          completed++;
          current = next;
        } else {
          expect(CancelledError.isInstance(outcome), `abort at ${delay}: ${String(outcome)}`).toBe(true);
          cancelled++;
        }
        // Exactly the old content after a cancel, exactly the new one after a success; never a temp file.
        expect(onDisk(), `abort at ${delay}`).toBe(hashes[current]);
        expect(readdirSync(host)).toEqual(["big.bin"]);
      }
      console.log(
        `[abort] ${delays.length} aborted writes of 64 MiB (full write ${full.toFixed(0)} ms): ${cancelled} cancelled, ${completed} completed before the abort`,
      );
      // The pre-aborted write and at least one abort mid-write were cancelled.
      expect(cancelled).toBeGreaterThanOrEqual(3);
    } finally {
      await session.close();
    }
  }, 300_000);
});
