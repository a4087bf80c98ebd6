import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";

// The runner run by an unprivileged user (uid 65534), against the built package: an isolated destination is
// refused with a typed error that says why (never a silent fallback), and a session without isolation still
// ends its daemons at close (its cgroup cannot be made: the environment marker and /proc scan do it).
const root = process.getuid?.() === 0;
const built = existsSync(new URL("../dist/index.js", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "roder-unpriv-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe.skipIf(!root || !built)("unix-local run by an unprivileged user", () => {
  it("refuses isolation 'bwrap' with a typed error, and close() ends an unisolated session's daemons", async () => {
    chownSync(dir, 65534, 65534);
    const token = randomUUID();
    const child = spawn(
      process.execPath,
      [new URL("./__fixtures__/unprivileged.mjs", import.meta.url).pathname],
      {
        uid: 65534,
        gid: 65534,
        env: { PATH: process.env.PATH, HOME: dir, WORK_DIR: dir, TOKEN: token },
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (b) => (stdout += b));
    child.stderr.on("data", (b) => (stderr += b));
    const code = await new Promise((r) => child.on("close", r));
    expect(code, stderr).toBe(0);
    const out = JSON.parse(stdout);
    expect(out.bwrap.code).toBe("unsupported_capability");
    expect(out.bwrap.message).toMatch(/needs the runner to run as root/);
    expect(out.uid).toBe("65534");
    expect(out.tracking).toBe("marker");
    const alive = readdirSync("/proc").filter((n) => {
      try {
        return /^\d+$/.test(n) && readFileSync(`/proc/${n}/cmdline`).includes(token);
      } catch {
        return false;
      }
    });
    expect(alive).toEqual([]);
  });
});
