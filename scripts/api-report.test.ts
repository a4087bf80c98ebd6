import { execFileSync, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

// The public API of every package is checked in as an api-extractor report (packages/<pkg>/etc/*.api.md): a
// change of an exported name or signature fails here until `pnpm api-report` rewrites the report, so the change
// is a visible diff in review.
const root = resolve(import.meta.dirname, "..");
const script = join(root, "scripts", "api-report.mjs");
const report = (...args: string[]) =>
  spawnSync(process.execPath, [script, ...args], { cwd: root, encoding: "utf8" });

describe("the public API reports", () => {
  beforeAll(() => {
    execFileSync("npx", ["turbo", "run", "build"], { cwd: root, stdio: "ignore" });
  }, 600_000);

  it("every package's exported surface is the one its checked-in report shows", () => {
    const r = report("--check");
    expect(r.stderr, "run `pnpm build && pnpm api-report` and commit packages/*/etc/*.api.md").toBe("");
    expect(r.status).toBe(0);
  }, 120_000);
});

describe("pnpm api-report --check", () => {
  // A throw-away package inside the tree (under .tmp/, ignored), so its declarations resolve @types/node.
  mkdirSync(join(root, ".tmp"), { recursive: true });
  const tree = mkdtempSync(join(root, ".tmp", "api-report-"));
  const pkg = join(tree, "packages", "demo");
  afterAll(() => rmSync(tree, { recursive: true, force: true }));

  it("passes on an unchanged surface and names the package whose surface changed", () => {
    mkdirSync(join(pkg, "dist"), { recursive: true });
    writeFileSync(
      join(pkg, "package.json"),
      JSON.stringify({ name: "@roder/runner-demo", version: "0.0.0" }),
    );
    const dts = join(pkg, "dist", "index.d.ts");
    writeFileSync(dts, "/** Greets. */\nexport declare function hello(name: string): string;\n");
    expect(report("--root", tree).status).toBe(0);
    const written = readFileSync(join(pkg, "etc", "runner-demo.api.md"), "utf8");
    expect(written).toContain("export function hello(name: string): string;");
    expect(report("--root", tree, "--check").status).toBe(0);

    // A changed signature (an optional parameter more) fails the check, naming the package; --check writes
    // nothing, so the checked-in report stays as it was.
    writeFileSync(dts, "export declare function hello(name: string, loud?: boolean): string;\n");
    const r = report("--root", tree, "--check");
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("the exported API of demo differs");
    expect(r.stderr).toContain("pnpm api-report");
    expect(readFileSync(join(pkg, "etc", "runner-demo.api.md"), "utf8")).toBe(written);
  }, 120_000);
});
