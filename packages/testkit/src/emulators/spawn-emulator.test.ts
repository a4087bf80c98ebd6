import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { binOf } from "./spawn-emulator.js";

describe("emulators are optional peers", () => {
  it("resolves an installed emulator's bin when it is started", () => {
    expect(existsSync(binOf("s3rver", "s3rver"))).toBe(true);
    expect(existsSync(binOf("azurite", "azurite-blob"))).toBe(true);
  });

  it("a missing emulator fails naming the package to install", () => {
    const empty = mkdtempSync(join(tmpdir(), "roder-no-emulator-"));
    try {
      // A fresh process without pnpm's NODE_PATH, resolving from a directory where nothing is installed.
      const env = { ...process.env };
      delete env.NODE_PATH;
      const script = `
        import { binOf } from ${JSON.stringify(join(import.meta.dirname, "spawn-emulator.ts"))};
        try { binOf("s3rver", "s3rver", "npm install -D s3rver@3.7.1", ${JSON.stringify(join(empty, "x.js"))}); console.log("resolved"); }
        catch (e) { console.log(JSON.stringify({ code: e.code, dependency: e.dependency, message: e.message })); }`;
      const r = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
        env,
        encoding: "utf8",
      });
      const out = JSON.parse(r.stdout.trim().split("\n").pop() ?? "null") as {
        code: string;
        dependency: string;
        message: string;
      };
      expect(out, r.stderr).toMatchObject({ code: "missing_dependency", dependency: "s3rver" });
      expect(out.message).toContain("npm install -D s3rver@3.7.1");
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });
});
