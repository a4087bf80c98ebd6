import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";

// The benchmark suite in its short mode (CI): every package bench runs and reports ratios against its raw
// baseline. Figures are not asserted (speed lives in `pnpm bench`), only that they were measured.
describe("pnpm bench (short mode)", () => {
  it("runs every benchmark and reports a ratio for each baseline", () => {
    const out = join(mkdtempSync(join(tmpdir(), "roder-bench-test-")), "bench.json");
    const r = spawnSync(process.execPath, [resolve(import.meta.dirname, "bench.mjs")], {
      cwd: resolve(import.meta.dirname, ".."),
      env: { ...process.env, BENCH_SHORT: "1", BENCH_OUT: out },
      encoding: "utf8",
      timeout: 600_000,
    });
    expect(r.status, r.stderr.slice(-2000)).toBe(0);
    const { rows, failures } = JSON.parse(readFileSync(out, "utf8")) as {
      rows: Array<{
        package: string;
        operation: string;
        ours: number | null;
        baseline: number | null;
        ratio: number | null;
      }>;
      failures: string[];
    };
    expect(failures).toEqual([]);
    expect(new Set(rows.map((x) => x.package))).toEqual(
      new Set(["local", "http", "storage", "contract", "fly", "e2b"]),
    );
    for (const row of rows) {
      expect(Number.isFinite(row.ours), row.operation).toBe(true);
      if (row.baseline !== null) expect(row.ratio).toBeCloseTo((row.ours as number) / row.baseline, 5);
    }
    expect(r.stdout).toMatch(/\| package +\| operation/);
    expect(
      rows.find((x) => /sessions x \d+ commands: p50 latency \(errors 0\)/.test(x.operation)),
    ).toBeDefined();
  }, 600_000);
});
