import { spawnSync } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const root = fileURLToPath(new URL("..", import.meta.url));

/** A copy of the scripts and the packages' package.json files, so the check can rewrite them. */
function copy(): string {
  const dir = mkdtempSync(join(tmpdir(), "roder-release-"));
  cpSync(join(root, "scripts", "release-check.mjs"), join(dir, "scripts", "release-check.mjs"));
  for (const pkg of ["cli", "contract", "local"])
    cpSync(join(root, "packages", pkg, "package.json"), join(dir, "packages", pkg, "package.json"));
  return dir;
}

describe("release-check (before changeset publish)", () => {
  it("refuses a placeholder repository URL and names every package", () => {
    const dir = copy();
    const r = spawnSync(process.execPath, [join(dir, "scripts", "release-check.mjs")], { encoding: "utf8" });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(
      "@roder/runner-cli: repository.url is 'git+https://example.invalid/roder-runners.git'",
    );
    expect(r.stderr).toContain("@roder/runner-local");
    expect(r.stderr).toContain("RODER_REPOSITORY_URL");
  });

  it("sets the real URL in every package in one command, then passes", () => {
    const dir = copy();
    const url = "git+https://git.example-host.org/team/roder-runners.git";
    const r = spawnSync(process.execPath, [join(dir, "scripts", "release-check.mjs")], {
      encoding: "utf8",
      env: { ...process.env, RODER_REPOSITORY_URL: url },
    });
    expect(r.status, r.stderr).toBe(0);
    const pkg = JSON.parse(readFileSync(join(dir, "packages", "contract", "package.json"), "utf8"));
    expect(pkg.repository).toEqual({ type: "git", url, directory: "packages/contract" });
    expect(pkg.name).toBe("@roder/runner-contract");
  });
});
