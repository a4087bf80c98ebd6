#!/usr/bin/env node
// Runs before `changeset publish` (`pnpm release`): refuses to publish packages whose metadata still points
// nowhere. Every public package must name the project's real git repository (npm shows it as the package's
// "Repository" link, provenance checks it) — a placeholder host (`*.invalid`, `example.*`) stops the release.
// RODER_REPOSITORY_URL=git+https://host/owner/repo.git rewrites every package's field first (one command).
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const set = process.env.RODER_REPOSITORY_URL;
const problems = [];
for (const dir of readdirSync(join(root, "packages"))) {
  const file = join(root, "packages", dir, "package.json");
  let pkg;
  try {
    pkg = JSON.parse(readFileSync(file, "utf8"));
  } catch {
    continue;
  }
  if (pkg.private) continue;
  if (set) {
    pkg.repository = { type: "git", url: set, directory: `packages/${dir}` };
    writeFileSync(file, `${JSON.stringify(pkg, null, 2)}\n`);
  }
  const url = typeof pkg.repository === "string" ? pkg.repository : pkg.repository?.url;
  let host = "";
  try {
    host = new URL(String(url).replace(/^git\+/, "")).hostname;
  } catch {}
  if (!host || host.endsWith(".invalid") || /^example\./.test(host) || host === "localhost")
    problems.push(`${pkg.name}: repository.url is ${url ? `'${url}'` : "missing"}`);
  else if (pkg.repository?.directory !== `packages/${dir}`)
    problems.push(`${pkg.name}: repository.directory should be 'packages/${dir}'`);
}
if (problems.length) {
  process.stderr.write(
    `release-check: not publishing:\n  ${problems.join("\n  ")}\n` +
      "set the real repository with RODER_REPOSITORY_URL=git+https://HOST/OWNER/REPO.git node scripts/release-check.mjs\n",
  );
  process.exit(1);
}
process.stdout.write("release-check: package metadata ok\n");
