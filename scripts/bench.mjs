#!/usr/bin/env node
// One entry point for every benchmark: runs each package's bench script (packages/*/bench/*.mjs) in its own
// process, adds cold-import and install-size figures, and prints one table: operation, this project, the raw
// baseline measured in the same run, the ratio, and peak RSS. BENCH_SHORT=1 runs the quick mode (CI).
// BENCH_OUT=file.json also writes the rows as JSON.
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const short = process.env.BENCH_SHORT === "1";
const only = process.argv.slice(2);
const rows = [];
const failures = [];

function fmt(n, unit) {
  if (n === null || n === undefined || Number.isNaN(n)) return "-";
  if (unit === "MiB/s" || unit === "ms" || unit === "MiB")
    return `${n.toFixed(n >= 100 ? 0 : n >= 10 ? 1 : 2)} ${unit}`;
  return `${n} ${unit ?? ""}`.trim();
}

// 1. Package benchmarks.
for (const pkg of readdirSync(join(root, "packages"))) {
  const dir = join(root, "packages", pkg, "bench");
  if (!existsSync(dir)) continue;
  for (const file of readdirSync(dir).filter((f) => f.endsWith(".mjs"))) {
    if (only.length && !only.some((o) => pkg.includes(o) || file.includes(o))) continue;
    const out = join(mkdtempSync(join(tmpdir(), "roder-bench-")), "out.json");
    process.stderr.write(`[bench] ${pkg}/bench/${file}${short ? " (short)" : ""}\n`);
    const r = spawnSync(process.execPath, [join(dir, file)], {
      cwd: root,
      env: { ...process.env, BENCH_OUT: out, BENCH_SHORT: short ? "1" : "0" },
      stdio: ["ignore", "inherit", "inherit"],
      timeout: short ? 10 * 60_000 : 60 * 60_000,
    });
    if (r.status !== 0 || !existsSync(out)) {
      failures.push(`${pkg}/${file}: exit ${r.status ?? r.signal}`);
      continue;
    }
    const data = JSON.parse(readFileSync(out, "utf8"));
    for (const row of data.rows ?? []) rows.push({ package: pkg, ...row });
  }
}

// 2. Cold import time of each provider package (built dist) and of the raw SDK it wraps.
function coldImportMs(specifier, cwd) {
  const samples = [];
  for (let i = 0; i < (short ? 3 : 7); i++) {
    const r = spawnSync(
      process.execPath,
      [
        "--input-type=module",
        "-e",
        `const t=performance.now();await import(${JSON.stringify(specifier)});console.log(performance.now()-t)`,
      ],
      { cwd, encoding: "utf8" },
    );
    if (r.status !== 0) return null;
    samples.push(Number(r.stdout.trim()));
  }
  samples.sort((a, b) => a - b);
  return samples[Math.floor(samples.length / 2)];
}
const importPairs = [
  ["contract", "@roder/runner-contract", "zod"],
  ["storage", "@roder/runner-storage", "@aws-sdk/client-s3"],
  ["local", "@roder/runner-local", null],
  ["http", "@roder/runner-http", null],
  ["fly", "@roder/runner-fly", null],
  ["e2b", "@roder/runner-e2b", "e2b"],
];
if (!only.length || only.includes("import")) {
  for (const [pkg, name, raw] of importPairs) {
    // Each package imports itself by name (package self-reference), from its own directory.
    const cwd = join(root, "packages", pkg);
    const ours = coldImportMs(name, cwd);
    const base = raw ? coldImportMs(raw, cwd) : null;
    rows.push({
      package: pkg,
      operation: `cold import ${name}`,
      ours,
      baseline: base,
      baseline_name: raw ? `import ${raw}` : "-",
      unit: "ms",
      ratio: ours !== null && base ? ours / base : null,
    });
    if (ours === null) failures.push(`cold import of ${name} failed`);
  }
}

// 3. Install size of each provider package on its own (packs the workspace; full mode only).
if (!short && (!only.length || only.includes("install"))) {
  const packDir = mkdtempSync(join(tmpdir(), "roder-pack-"));
  try {
    execFileSync(
      "pnpm",
      ["-r", "--filter", "./packages/*", "exec", "pnpm", "pack", "--pack-destination", packDir],
      {
        cwd: root,
        stdio: "ignore",
      },
    );
    const tarballs = readdirSync(packDir).filter((f) => f.endsWith(".tgz"));
    const tgz = (n) =>
      join(
        packDir,
        tarballs.find((t) => t.startsWith(`roder-runner-${n}-`)),
      );
    for (const pkg of ["local", "http", "fly", "e2b", "storage"]) {
      const proj = mkdtempSync(join(tmpdir(), "roder-install-"));
      writeFileSync(join(proj, "package.json"), '{"name":"probe","private":true}');
      const deps = ["contract", "storage", pkg].filter((v, i, a) => a.indexOf(v) === i).map(tgz);
      execFileSync("npm", ["install", "--no-audit", "--no-fund", "--omit=peer", ...deps], {
        cwd: proj,
        stdio: "ignore",
      });
      const kb = Number(
        execFileSync("du", ["-sk", join(proj, "node_modules")], { encoding: "utf8" }).split("\t")[0],
      );
      rows.push({
        package: pkg,
        operation: `install size @roder/runner-${pkg} alone`,
        ours: kb / 1024,
        baseline: null,
        baseline_name: "-",
        unit: "MiB",
        ratio: null,
      });
      rmSync(proj, { recursive: true, force: true });
    }
  } catch (error) {
    failures.push(`install size: ${error.message.split("\n")[0]}`);
  } finally {
    rmSync(packDir, { recursive: true, force: true });
  }
}

// Table.
const header = ["package", "operation", "this project", "raw baseline", "baseline", "ratio", "peak RSS"];
const table = rows.map((r) => [
  r.package,
  r.operation,
  fmt(r.ours, r.unit),
  fmt(r.baseline, r.unit),
  r.baseline_name ?? "-",
  r.ratio === null || r.ratio === undefined ? "-" : `${r.ratio.toFixed(2)}x`,
  r.peak_rss_mb
    ? `${r.peak_rss_mb.toFixed(0)} MiB${r.baseline_rss_mb ? ` (raw ${r.baseline_rss_mb.toFixed(0)})` : ""}`
    : "-",
]);
const widths = header.map((h, i) => Math.max(h.length, ...table.map((r) => String(r[i]).length)));
const line = (cells) => `| ${cells.map((c, i) => String(c).padEnd(widths[i])).join(" | ")} |`;
console.log(line(header));
console.log(`|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`);
for (const r of table) console.log(line(r));
console.log(
  `\nmachine: ${(await import("node:os")).cpus().length} cores, ${Math.round((await import("node:os")).totalmem() / 2 ** 30)} GiB, node ${process.version}${short ? ", short mode" : ""}`,
);
if (process.env.BENCH_OUT) writeFileSync(process.env.BENCH_OUT, JSON.stringify({ rows, failures }, null, 2));
if (failures.length) {
  console.error(`benchmarks that failed:\n  ${failures.join("\n  ")}`);
  process.exit(1);
}
