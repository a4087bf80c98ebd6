import { spawnSync } from "node:child_process";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");

describe("pnpm lint", () => {
  it("biome finds no lint error and no unformatted file in the tree", () => {
    const r = spawnSync(join(root, "node_modules", ".bin", "biome"), ["check", "--colors=off", "."], {
      cwd: root,
      encoding: "utf8",
    });
    expect(r.status, r.stdout + r.stderr).toBe(0);
  }, 60_000);
});
