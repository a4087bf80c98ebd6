#!/usr/bin/env node
// The public API report of every package: api-extractor over the package's built declarations
// (dist/index.d.ts — run `pnpm build` first) into packages/<pkg>/etc/<unscoped name>.api.md.
//
//   node scripts/api-report.mjs            (pnpm api-report) rewrites the reports
//   node scripts/api-report.mjs --check    writes nothing; exits 1 naming each package whose exported surface
//                                          differs from its checked-in report (scripts/api-report.test.ts)
//
// Extra arguments name packages (directory names: contract, local, …); default: every package. The reports are
// exact text: the same api-extractor (pinned in the root package.json) gives the same report for the same
// declarations.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Extractor, ExtractorConfig } from "@microsoft/api-extractor";

const args = process.argv.slice(2);
const check = args.includes("--check");
// --root DIR: another tree holding packages/<pkg> (the script's own test uses a throw-away package).
const rootAt = args.indexOf("--root");
const root = rootAt >= 0 ? resolve(args[rootAt + 1]) : join(dirname(fileURLToPath(import.meta.url)), "..");
const named = args.filter((a, i) => !a.startsWith("--") && (rootAt < 0 || i !== rootAt + 1));
const packages = (named.length ? named : readdirSync(join(root, "packages"))).filter((p) =>
  existsSync(join(root, "packages", p, "package.json")),
);

const temp = mkdtempSync(join(tmpdir(), "roder-api-report-"));
const changed = [];
const failed = [];
try {
  for (const pkg of packages) {
    const projectFolder = join(root, "packages", pkg);
    const packageJsonFullPath = join(projectFolder, "package.json");
    if (!existsSync(join(projectFolder, "dist", "index.d.ts"))) {
      failed.push(`${pkg}: no dist/index.d.ts (run pnpm build first)`);
      continue;
    }
    if (!check) mkdirSync(join(projectFolder, "etc"), { recursive: true });
    const config = ExtractorConfig.prepare({
      configObjectFullPath: join(projectFolder, "api-extractor.json"), // not read: the object below is the config
      packageJsonFullPath,
      configObject: {
        projectFolder,
        mainEntryPointFilePath: "<projectFolder>/dist/index.d.ts",
        compiler: {
          overrideTsconfig: {
            compilerOptions: {
              target: "ES2022",
              lib: ["ES2023"],
              module: "NodeNext",
              moduleResolution: "NodeNext",
              strict: true,
              skipLibCheck: true,
              types: ["node"],
            },
            files: ["dist/index.d.ts"],
          },
        },
        apiReport: {
          enabled: true,
          reportFolder: "<projectFolder>/etc/",
          reportTempFolder: join(temp, pkg),
          reportFileName: "<unscopedPackageName>.api.md",
        },
        docModel: { enabled: false },
        dtsRollup: { enabled: false },
        tsdocMetadata: { enabled: false },
        newlineKind: "lf",
        messages: {
          // A declaration the compiler cannot read fails the report.
          compilerMessageReporting: { default: { logLevel: "error" } },
          // The report holds the surface only: api-extractor's findings would name lines of dist files, which
          // move with edits that change no export.
          extractorMessageReporting: { default: { logLevel: "none", addToApiReportFile: false } },
          tsdocMessageReporting: { default: { logLevel: "none", addToApiReportFile: false } },
        },
      },
    });
    const errors = [];
    const result = Extractor.invoke(config, {
      localBuild: !check,
      messageCallback: (message) => {
        message.handled = true;
        if (message.logLevel === "error") errors.push(message.formatMessageWithLocation(projectFolder));
      },
    });
    if (result.errorCount > 0)
      failed.push(`${pkg}: ${errors.join("\n  ") || `${result.errorCount} error(s)`}`);
    else if (result.apiReportChanged) changed.push(pkg);
  }
} finally {
  rmSync(temp, { recursive: true, force: true });
}

for (const f of failed) process.stderr.write(`api-report: ${f}\n`);
if (check && changed.length) {
  process.stderr.write(
    `api-report: the exported API of ${changed.join(", ")} differs from packages/<pkg>/etc/*.api.md.\n` +
      "If the change is intended, run `pnpm build && pnpm api-report` and commit the updated report.\n",
  );
}
if (!check)
  process.stdout.write(
    `api-report: ${packages.length - failed.length} report(s) written${changed.length ? ` (changed: ${changed.join(", ")})` : ""}\n`,
  );
process.exit(failed.length || (check && changed.length) ? 1 : 0);
