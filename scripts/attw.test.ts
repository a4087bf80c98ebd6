import { spawnSync } from "node:child_process";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");

describe("published types (are the types wrong?)", () => {
  it("every package's packed types resolve for node16 (ESM) and bundlers", () => {
    const r = spawnSync(process.execPath, [join(root, "scripts", "attw.mjs")], {
      cwd: root,
      encoding: "utf8",
    });
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/attw: 0 package\(s\) with type problems\n$/);
    expect(r.stdout.match(/^ok {3}/gm)?.length).toBe(8);
  }, 180_000);
});
