#!/usr/bin/env node
// Are the types wrong? Packs every package (npm pack, no network) and checks its types resolve for node16
// (ESM and CJS importers) and bundlers. The packages are ESM-only on purpose: a CommonJS caller uses
// `await import()` (or Node's require(esm)), so that one finding is not an error.
import { spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const bin = join(root, "node_modules", ".bin", "attw");
let failed = 0;
for (const pkg of readdirSync(join(root, "packages")).sort()) {
  const r = spawnSync(
    bin,
    ["--pack", ".", "--profile", "node16", "--ignore-rules", "cjs-resolves-to-esm", "--format", "ascii"],
    { cwd: join(root, "packages", pkg), encoding: "utf8" },
  );
  const ok = r.status === 0;
  if (!ok) failed++;
  process.stdout.write(`${ok ? "ok  " : "FAIL"} ${pkg}\n`);
  if (!ok) process.stdout.write(`${r.stdout}${r.stderr}\n`);
}
process.stdout.write(`attw: ${failed} package(s) with type problems\n`);
process.exit(failed ? 1 : 0);
