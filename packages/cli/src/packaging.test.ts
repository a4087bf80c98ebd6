import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { SHORT_PATH_CHECKS, tsBlocks } from "../../../scripts/short-path-examples.js";

const root = resolve(import.meta.dirname, "../../..");
const packages = readdirSync(join(root, "packages"));
const packDir = mkdtempSync(join(tmpdir(), "roder-pack-"));
const tarballs: Record<string, string> = {};
const listings: Record<string, string[]> = {};

beforeAll(() => {
  execFileSync("npx", ["turbo", "run", "build"], { cwd: root, stdio: "ignore" });
  for (const pkg of packages) {
    const out = execFileSync("pnpm", ["pack", "--pack-destination", packDir], {
      cwd: join(root, "packages", pkg),
      encoding: "utf8",
    });
    const file = out.trim().split("\n").pop()!.trim();
    tarballs[pkg] = file.startsWith("/") ? file : join(packDir, file);
    listings[pkg] = execFileSync("tar", ["-tzf", tarballs[pkg]!], { encoding: "utf8" }).trim().split("\n");
  }
}, 600_000);

describe.each(packages)("the packed @roder/runner-%s", (pkg) => {
  it("holds dist, types, README and package.json, and no tests, sources, fixtures or secrets", () => {
    const files = listings[pkg]!;
    for (const must of [
      "package/package.json",
      "package/README.md",
      "package/dist/index.js",
      "package/dist/index.d.ts",
    ])
      expect(files, must).toContain(must);
    expect(files.filter((f) => /\.test\.|\/src\/|__fixtures__|rust-golden|\.env/.test(f))).toEqual([]);
    // No source maps: they would point at sources that are not shipped.
    expect(files.filter((f) => f.endsWith(".map"))).toEqual([]);
    const manifest = JSON.parse(
      execFileSync("tar", ["-xzOf", tarballs[pkg]!, "package/package.json"], { encoding: "utf8" }),
    );
    expect(JSON.stringify(manifest)).not.toContain("workspace:");
    const all = execFileSync("tar", ["-xzOf", tarballs[pkg]!], {
      encoding: "utf8",
      maxBuffer: 64 * 1024 * 1024,
    });
    // Secret-looking strings: AWS key ids, private keys, E2B keys, Fly tokens, GitHub and Slack tokens, and
    // the canaries the test suites use for secret values.
    expect(all).not.toContain("sourceMappingURL");
    expect(all).not.toMatch(
      /AKIA[0-9A-Z]{16}|-----BEGIN [A-Z ]*PRIVATE KEY-----|e2b_[a-f0-9]{32}|FlyV1 fm\d_|gh[pousr]_[A-Za-z0-9]{36}|xox[abprs]-[A-Za-z0-9-]{10,}|secret-canary/,
    );
  });

  it("passes publint", () => {
    const r = spawnSync("npx", ["publint", "--level", "error", join(root, "packages", pkg)], {
      encoding: "utf8",
    });
    expect(r.status, r.stdout + r.stderr).toBe(0);
  });
});

describe("installing the tarballs in an empty project", () => {
  it("imports every package, and importing a provider loads no cloud SDK (AWS, Azure, GCS, e2b)", () => {
    const proj = mkdtempSync(join(tmpdir(), "roder-install-"));
    writeFileSync(
      join(proj, "package.json"),
      JSON.stringify({ name: "probe", private: true, type: "module" }),
    );
    execFileSync(
      "npm",
      ["install", "--no-audit", "--no-fund", "--loglevel=error", ...Object.values(tarballs)],
      { cwd: proj, stdio: "pipe", timeout: 300_000 },
    );
    const hook = `export async function resolve(s, c, next) { if (/^(@(aws-sdk|azure|google-cloud)\\/|e2b$)/.test(s)) process.stderr.write("SDK:" + s + "\\n"); return next(s, c); }`;
    const probe = (specifier: string) =>
      spawnSync(
        process.execPath,
        [
          "--input-type=module",
          "-e",
          `import { register } from "node:module"; register("data:text/javascript,${encodeURIComponent(hook)}"); const m = await import("${specifier}"); console.log(Object.keys(m).length);`,
        ],
        { cwd: proj, encoding: "utf8" },
      );
    // Control: the hook does see an SDK being loaded (so "no SDK:" below means something).
    expect(probe("e2b").stderr).toContain("SDK:e2b");
    for (const pkg of packages) {
      const r = probe(`@roder/runner-${pkg}`);
      expect(r.status, `${pkg}: ${r.stderr}`).toBe(0);
      expect(Number(r.stdout.trim())).toBeGreaterThan(0);
      if (pkg !== "testkit") expect(r.stderr, pkg).not.toContain("SDK:");
    }
    const bin = spawnSync(
      join(proj, "node_modules/.bin/roder-runner"),
      ["exec", "-d", "local", "--", "echo", "installed"],
      { encoding: "utf8" },
    );
    expect(bin.stdout).toBe("installed\n");
  }, 400_000);

  it("require() loads every library package, and the README's short path type-checks under strict with skipLibCheck off (nodenext and bundler), no optional SDK installed", () => {
    const proj = mkdtempSync(join(tmpdir(), "roder-install-types-"));
    writeFileSync(
      join(proj, "package.json"),
      JSON.stringify({ name: "probe-types", private: true, type: "module" }),
    );
    const libs = ["contract", "storage", "local", "http", "fly", "e2b"];
    execFileSync(
      "npm",
      ["install", "--no-audit", "--no-fund", "--loglevel=error", ...libs.map((p) => tarballs[p]!)],
      { cwd: proj, stdio: "pipe", timeout: 300_000 },
    );
    // Not one optional cloud SDK is installed: their types must not be needed.
    for (const sdk of [
      "@aws-sdk/client-s3",
      "@aws-sdk/lib-storage",
      "@azure/storage-blob",
      "@google-cloud/storage",
    ])
      expect(existsSync(join(proj, "node_modules", sdk)), sdk).toBe(false);
    // CommonJS callers: require(esm) on Node >= 20.19.
    for (const pkg of libs) {
      const r = spawnSync(
        process.execPath,
        ["-e", `const m = require("@roder/runner-${pkg}"); console.log(Object.keys(m).length)`],
        { cwd: proj, encoding: "utf8" },
      );
      expect(r.status, `${pkg}: ${r.stderr}`).toBe(0);
      expect(Number(r.stdout.trim()), pkg).toBeGreaterThan(0);
    }
    const cjs = spawnSync(
      process.execPath,
      [
        "-e",
        `const { createLocalProvider } = require("@roder/runner-local"); console.log(typeof createLocalProvider)`,
      ],
      { cwd: proj, encoding: "utf8" },
    );
    expect(cjs.stdout.trim(), cjs.stderr).toBe("function");
    // The root README's TypeScript examples and the short-path checks, against the published declarations.
    const files = tsBlocks(readFileSync(join(root, "README.md"), "utf8")).map((code, i) => {
      writeFileSync(join(proj, `readme-${i}.ts`), `${code}\nexport {};\n`);
      return `readme-${i}.ts`;
    });
    expect(files.length).toBeGreaterThanOrEqual(2);
    writeFileSync(join(proj, "checks.ts"), `${SHORT_PATH_CHECKS}\nexport {};\n`);
    files.push("checks.ts");
    const tsc = join(root, "node_modules", "typescript", "bin", "tsc");
    for (const [module, moduleResolution] of [
      ["nodenext", "nodenext"],
      ["esnext", "bundler"],
    ]) {
      const config = `tsconfig.${moduleResolution}.json`;
      writeFileSync(
        join(proj, config),
        JSON.stringify({
          compilerOptions: {
            strict: true,
            module,
            moduleResolution,
            target: "es2022",
            skipLibCheck: false,
            noEmit: true,
          },
          files,
        }),
      );
      const r = spawnSync(process.execPath, [tsc, "-p", config], { cwd: proj, encoding: "utf8" });
      expect(r.stdout + r.stderr, moduleResolution).toBe("");
      expect(r.status, moduleResolution).toBe(0);
    }
  }, 600_000);

  it("the CLI alone (no e2b package) installs, runs locally, and lists only the providers present", () => {
    const proj = mkdtempSync(join(tmpdir(), "roder-install-cli-"));
    writeFileSync(
      join(proj, "package.json"),
      JSON.stringify({ name: "probe-cli", private: true, type: "module" }),
    );
    // npm resolves the CLI's @roder dependencies from these tarballs; e2b and testkit are left out.
    const wanted = ["cli", "contract", "local", "http", "fly", "storage"].map((p) => tarballs[p]!);
    execFileSync("npm", ["install", "--no-audit", "--no-fund", "--loglevel=error", ...wanted], {
      cwd: proj,
      stdio: "pipe",
      timeout: 300_000,
    });
    const exe = join(proj, "node_modules/.bin/roder-runner");
    const list = spawnSync(exe, ["providers", "--json"], { encoding: "utf8" });
    expect(list.status, list.stderr).toBe(0);
    expect((JSON.parse(list.stdout) as Array<{ id: string }>).map((p) => p.id)).toEqual([
      "unix-local",
      "http",
      "fly",
    ]);
    const run = spawnSync(exe, ["exec", "-d", "local", "--", "sh", "-c", "echo alone; exit 7"], {
      encoding: "utf8",
    });
    expect([run.status, run.stdout]).toEqual([7, "alone\n"]);
    // Missing optional packages: all those an S3 export needs are named at once, exit 3 (configuration).
    writeFileSync(
      join(proj, "s3.json"),
      JSON.stringify({
        id: "s",
        provider_id: "unix-local",
        config: {
          artifacts: { uri: "s3://outputs/p", credentials: { id: "data" }, endpoint: "http://127.0.0.1:9" },
        },
      }),
    );
    const st = join(proj, "st.json");
    const kept = spawnSync(
      exe,
      ["exec", "-d", "s3.json", "--keep", "--state-out", st, "--", "sh", "-c", "echo a > a.txt"],
      {
        cwd: proj,
        encoding: "utf8",
      },
    );
    expect(kept.status, kept.stderr).toBe(0);
    const exp = spawnSync(exe, ["export", "-s", st, "a.txt"], {
      cwd: proj,
      encoding: "utf8",
      env: { ...process.env, RODER_SECRET_DATA_ACCESS_KEY_ID: "k", RODER_SECRET_DATA_SECRET_ACCESS_KEY: "s" },
    });
    expect(exp.status, exp.stderr).toBe(3);
    expect(exp.stderr).toMatch(
      /^roder-runner: error: .* needs @aws-sdk\/client-s3, @aws-sdk\/s3-request-presigner, @aws-sdk\/lib-storage, which are not installed\nhint: npm install @aws-sdk\/client-s3 @aws-sdk\/s3-request-presigner @aws-sdk\/lib-storage\n$/,
    );
    expect(spawnSync(exe, ["close", "-s", st], { cwd: proj }).status).toBe(0);
    // A destination of a provider package that is not installed: exit 3, the package named.
    writeFileSync(join(proj, "e2b.json"), JSON.stringify({ id: "e", provider_id: "e2b", config: {} }));
    const e2b = spawnSync(exe, ["exec", "-d", "e2b.json", "--", "true"], { cwd: proj, encoding: "utf8" });
    expect(e2b.status).toBe(3);
    expect(e2b.stderr).toMatch(/\nhint: npm install @roder\/runner-e2b\n$/);
  }, 400_000);
});
