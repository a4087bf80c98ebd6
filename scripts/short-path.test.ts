import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { SHORT_PATH_CHECKS, tsBlocks } from "./short-path-examples.js";

// The short path must keep compiling: the root README's TypeScript examples and the checks below are
// type-checked (strict) against the packages' sources. The packaging test does the same against the packed
// tarballs with skipLibCheck off.
const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const dir = mkdtempSync(join(tmpdir(), "roder-short-path-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("the short path compiles", () => {
  it("the root README's examples and the short-path checks type-check under strict", () => {
    const blocks = tsBlocks(readFileSync(join(root, "README.md"), "utf8"));
    expect(blocks.length).toBeGreaterThanOrEqual(2);
    const files = blocks.map((code, i) => {
      const f = join(dir, `readme-${i}.ts`);
      writeFileSync(f, `${code}\nexport {};\n`);
      return f;
    });
    writeFileSync(join(dir, "checks.ts"), `${SHORT_PATH_CHECKS}\nexport {};\n`);
    files.push(join(dir, "checks.ts"));
    writeFileSync(join(dir, "package.json"), JSON.stringify({ type: "module" }));
    writeFileSync(
      join(dir, "tsconfig.json"),
      JSON.stringify({
        extends: join(root, "tsconfig.json"),
        compilerOptions: { noEmit: true, typeRoots: [join(root, "node_modules", "@types")] },
        include: [],
        files,
      }),
    );
    const r = spawnSync(
      process.execPath,
      [join(root, "node_modules", "typescript", "bin", "tsc"), "-p", dir],
      {
        encoding: "utf8",
      },
    );
    expect(r.stdout + r.stderr).toBe("");
    expect(r.status).toBe(0);
  }, 400_000);

  it("a broken example is caught (the check can fail)", () => {
    const f = join(dir, "broken.ts");
    writeFileSync(
      f,
      `import type { RemoteRunnerSession } from "@roder/runner-contract";\ndeclare const s: RemoteRunnerSession;\nawait s.writeFile({ path: 1 });\nexport {};\n`,
    );
    writeFileSync(
      join(dir, "tsconfig.broken.json"),
      JSON.stringify({
        extends: join(root, "tsconfig.json"),
        compilerOptions: { noEmit: true, typeRoots: [join(root, "node_modules", "@types")] },
        include: [],
        files: [f],
      }),
    );
    const r = spawnSync(
      process.execPath,
      [join(root, "node_modules", "typescript", "bin", "tsc"), "-p", join(dir, "tsconfig.broken.json")],
      { encoding: "utf8" },
    );
    expect(r.status).not.toBe(0);
    expect(r.stdout).toMatch(/broken\.ts.*error TS/);
  }, 400_000);
});
