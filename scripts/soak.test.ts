import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";

// The soak script in a short run (`pnpm soak` runs it for 180 s): sessions on the local provider and through
// the HTTP server, with its verdict on heap, handles, descriptors and leftovers. Needs `pnpm build`.
describe("pnpm soak (short run)", () => {
  it("runs sessions on both paths for 8 s and passes its leak checks", () => {
    const out = join(mkdtempSync(join(tmpdir(), "roder-soak-test-")), "soak.json");
    const r = spawnSync(process.execPath, [resolve(import.meta.dirname, "soak.mjs")], {
      cwd: resolve(import.meta.dirname, ".."),
      env: { ...process.env, SOAK_SECONDS: "8", SOAK_OUT: out },
      encoding: "utf8",
      timeout: 120_000,
    });
    expect(r.status, `${r.stdout.slice(-3000)}\n${r.stderr.slice(-2000)}`).toBe(0);
    // The printed summary: the sample table, the per-provider counts, first third against last third.
    expect(r.stdout).toMatch(/^soak: \d+ s, \d+ iterations, samples every [\d.]+ s$/m);
    expect(r.stdout).toMatch(
      /^\| t \(s\) \| sessions \| RSS \(MiB\) \| heap used \(MiB\) \| handles \| fds \|$/m,
    );
    expect(r.stdout).toMatch(/^\| local \| [1-9]\d* \| [1-9]\d* \| [1-9]\d* \| [1-9]\d* \|$/m);
    expect(r.stdout).toMatch(/^\| http \| [1-9]\d* \| [1-9]\d* \| [1-9]\d* \| [1-9]\d* \|$/m);
    for (const key of ["rss", "heap", "handles", "fds"])
      expect(r.stdout).toMatch(
        new RegExp(`^\\| ${key} \\| [\\d.]+( MiB)? \\| [\\d.]+( MiB)? \\| [+-][\\d.]+( MiB)? \\|$`, "m"),
      );
    expect(r.stdout.trim().split("\n").at(-1)).toBe("SOAK OK");

    const report = JSON.parse(readFileSync(out, "utf8")) as {
      counts: Record<
        "local" | "http",
        { sessions: number; commands: number; files: number; streamed: number }
      >;
      samples: unknown[];
      failures: string[];
      leftovers: string[];
      verdicts: string[];
    };
    expect(report.failures).toEqual([]);
    expect(report.leftovers).toEqual([]);
    expect(report.verdicts).toEqual([]);
    expect(report.samples.length).toBeGreaterThanOrEqual(3);
    for (const c of Object.values(report.counts)) {
      expect(c.commands).toBe(c.sessions * 10);
      expect(c.files).toBe(c.sessions * 4);
      expect(c.streamed).toBe(c.sessions);
    }
  }, 180_000);

  it("fails when a leak is injected (heap, a timer and a descriptor per iteration)", () => {
    const r = spawnSync(process.execPath, [resolve(import.meta.dirname, "soak.mjs")], {
      cwd: resolve(import.meta.dirname, ".."),
      env: { ...process.env, SOAK_SECONDS: "8", SOAK_INJECT_LEAK: "1" },
      encoding: "utf8",
      timeout: 120_000,
    });
    expect(r.status, r.stdout.slice(-3000)).toBe(1);
    const verdict = r.stdout.trim().split("\n").at(-1) ?? "";
    expect(verdict).toMatch(/^SOAK FAIL: /);
    expect(verdict).toMatch(/heap grew [\d.]+ MiB \(bound 16 MiB\)/);
    expect(verdict).toMatch(/handles grew: \d+ -> \d+/);
    expect(verdict).toMatch(/fds grew: \d+ -> \d+/);
  }, 180_000);
});
