import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RunnerError } from "@roder/runner-contract";
import { afterAll, describe, expect, it } from "vitest";
import { createLocalProvider } from "./local-provider.js";

// A second process swaps directory `a/b` of the workspace with a symlink to a sentinel directory outside it,
// and back, as fast as it can, while the session writes and reads `a/b/file`. The confinement check and the
// I/O are separate system calls: a check-then-use implementation lets some of these calls through the link.
const OPS = Number(process.env.RODER_RACE_OPS ?? 2000);
const SECRET = "SENTINEL-SECRET-do-not-leak";
const ALLOWED_CODES = new Set([
  "path_outside_workspace",
  "not_found",
  "io_error",
  "is_a_directory",
  "not_a_regular_file",
]);

/** The swapper: plain synchronous fs calls in a tight loop, in its own process. */
const SWAPPER = `
const fs = require("node:fs");
const [dir, sentinel, stop] = process.argv.slice(1);
process.chdir(dir);
let swaps = 0;
const spin = (n) => { for (let i = 0; i < n; i++); };
const pause = (ms) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
while (!fs.existsSync(stop)) {
  try { fs.renameSync("b", "b.real"); } catch {}
  try { fs.symlinkSync(sentinel, "b"); swaps++; } catch {}
  spin(2000);
  try {
    if (fs.lstatSync("b").isSymbolicLink()) fs.unlinkSync("b");
    else fs.rmSync("b", { recursive: true, force: true });
  } catch {}
  try { fs.renameSync("b.real", "b"); } catch {}
  pause(0.5);
}
process.stdout.write(String(swaps));
`;

const temps: string[] = [];
afterAll(() => {
  for (const t of temps) rmSync(t, { recursive: true, force: true });
});

function withDeadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`hang: ${what} did not settle in ${ms} ms`)), ms);
    }),
  ]);
}

describe("unix-local under a symlink swap race", () => {
  it(`no write lands outside and no read returns outside content (${OPS} ops)`, async () => {
    const sentinel = mkdtempSync(join(tmpdir(), "roder-sentinel-"));
    const parent = mkdtempSync(join(tmpdir(), "roder-race-ws-"));
    temps.push(sentinel, parent);
    writeFileSync(join(sentinel, "file"), SECRET);
    const session = await createLocalProvider().createSession({
      id: "race",
      provider_id: "unix-local",
      config: { workspace_dir: parent },
      default_manifest: { entries: [], mounts: [] },
    });
    const host = (session.state().metadata as { host_root: string }).host_root;
    await mkdir(join(host, "a", "b"), { recursive: true });
    await writeFile(join(host, "a", "b", "file"), "inside-initial");
    const stop = join(parent, "stop");
    const swapper = spawn(process.execPath, ["-e", SWAPPER, join(host, "a"), sentinel, stop], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    let swapOut = "";
    swapper.stdout.on("data", (d) => {
      swapOut += d;
    });
    const exited = new Promise<number | null>((r) => swapper.on("exit", (code) => r(code)));

    const outcomes = { ok: 0, failed: 0, byCode: {} as Record<string, number> };
    const untyped: string[] = [];
    // Escapes: a read that returned the sentinel's content, and every change in the sentinel directory.
    const leaks: string[] = [];
    const seen = new Set(["file"]);
    const checkSentinel = (i: number) => {
      for (const name of readdirSync(sentinel)) {
        if (!seen.has(name)) leaks.push(`op ${i}: ${name} appeared in the sentinel directory`);
        seen.add(name);
      }
      if (readFileSync(join(sentinel, "file"), "utf8") !== SECRET) {
        leaks.push(`op ${i}: the sentinel file was overwritten`);
        writeFileSync(join(sentinel, "file"), SECRET);
      }
    };
    try {
      for (let i = 0; i < OPS; i++) {
        const write = i % 2 === 0;
        const op = write
          ? session.writeFile({ path: "a/b/file", contents: new TextEncoder().encode(`inside-${i}`) })
          : session.readFile({ path: "a/b/file" }).then((r) => {
              const text = new TextDecoder().decode(r.contents);
              if (text.includes("SENTINEL")) leaks.push(`op ${i}: read returned ${JSON.stringify(text)}`);
            });
        try {
          await withDeadline(op, 10_000, `op ${i}`);
          outcomes.ok++;
        } catch (error) {
          outcomes.failed++;
          if (RunnerError.isInstance(error) && ALLOWED_CODES.has(error.code)) {
            outcomes.byCode[error.code] = (outcomes.byCode[error.code] ?? 0) + 1;
          } else {
            untyped.push(`op ${i}: ${String(error)}`);
          }
        }
        if (write) checkSentinel(i);
      }
    } finally {
      writeFileSync(stop, "");
      await exited;
      await session.close();
    }
    const swaps = Number(swapOut);
    console.log(
      `[race] ${OPS} ops, ${swaps} swaps, ok ${outcomes.ok}, failed ${outcomes.failed} ${JSON.stringify(outcomes.byCode)}, escapes ${leaks.length}`,
    );
    expect(leaks).toEqual([]);
    expect(untyped).toEqual([]);
    expect(readdirSync(sentinel)).toEqual(["file"]);
    expect(readFileSync(join(sentinel, "file"), "utf8")).toBe(SECRET);
    // The race was real: the swapper ran throughout and both outcomes happened.
    expect(swaps).toBeGreaterThan(100);
    expect(outcomes.ok).toBeGreaterThan(0);
    expect(outcomes.failed).toBeGreaterThan(0);
  }, 300_000);

  it("a FIFO swapped in for a file is refused, not read forever", async () => {
    const session = await createLocalProvider().createSession({
      id: "fifo",
      provider_id: "unix-local",
      config: {},
      default_manifest: { entries: [], mounts: [] },
    });
    try {
      const made = await session.runCommand({ command_id: "mk", program: "mkfifo", args: ["pipe"] });
      expect(made.exit_code).toBe(0);
      const error = await withDeadline(session.readFile({ path: "pipe" }), 10_000, "readFile of a FIFO").then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(RunnerError.isInstance(error), String(error)).toBe(true);
      expect((error as RunnerError).code).toBe("not_a_regular_file");
    } finally {
      await session.close();
    }
  });
});

describe("artifact export reads the file it checked", () => {
  it("a path swapped for a symlink to a host file after the check still exports the workspace file", async () => {
    const { pinForExport } = await import("./local-fs.js");
    const root = mkdtempSync(join(tmpdir(), "roder-pin-ws-"));
    const outside = mkdtempSync(join(tmpdir(), "roder-pin-host-"));
    temps.push(root, outside);
    writeFileSync(join(outside, "host.txt"), SECRET);
    writeFileSync(join(root, "out.txt"), "workspace bytes");
    const c = { runnerRoot: root, root, realRoot: root, readRoots: [] };
    const pinned = await pinForExport(c, join(root, "out.txt"), "out.txt");
    try {
      // The swap a command under bwrap could make between the check and the upload.
      rmSync(join(root, "out.txt"));
      const { symlinkSync } = await import("node:fs");
      symlinkSync(join(outside, "host.txt"), join(root, "out.txt"));
      expect(pinned.path).toMatch(/^\/proc\/\d+\/fd\/\d+$/);
      expect(readFileSync(pinned.path, "utf8")).toBe("workspace bytes");
    } finally {
      await pinned.close();
    }
    // And a path that already is such a link is refused before anything is read.
    const e = await pinForExport(c, join(root, "out.txt"), "out.txt").catch((x: unknown) => x);
    expect(RunnerError.isInstance(e) && e.code === "path_outside_workspace", String(e)).toBe(true);
  });
});

describe("directory export archives the directory it checked", () => {
  it("a directory swapped for a symlink to a host directory after the check is archived as it was", async () => {
    const { pinForExport } = await import("./local-fs.js");
    const { execFileSync } = await import("node:child_process");
    const { renameSync, symlinkSync, mkdirSync } = await import("node:fs");
    const root = mkdtempSync(join(tmpdir(), "roder-pin-dir-ws-"));
    const outside = mkdtempSync(join(tmpdir(), "roder-pin-dir-host-"));
    temps.push(root, outside);
    writeFileSync(join(outside, "host.txt"), SECRET);
    mkdirSync(join(root, "dist"));
    writeFileSync(join(root, "dist", "app.bin"), "workspace bytes");
    // A link inside the directory is archived as a link, not followed.
    symlinkSync(join(outside, "host.txt"), join(root, "dist", "sneaky"));
    const c = { runnerRoot: root, root, realRoot: root, readRoots: [] };
    const pinned = await pinForExport(c, join(root, "dist"), "dist");
    try {
      renameSync(join(root, "dist"), join(root, "dist.real"));
      symlinkSync(outside, join(root, "dist"));
      const archive = execFileSync("tar", ["-czf", "-", "-C", pinned.path, "."]);
      const listing = execFileSync("tar", ["-tzvf", "-"], { input: archive }).toString();
      expect(listing).toContain("./app.bin");
      expect(listing).toMatch(/sneaky -> /);
      expect(listing).not.toMatch(/ \.\/host\.txt$/m);
      const inside = execFileSync("tar", ["-xzOf", "-", "./app.bin"], { input: archive }).toString();
      expect(inside).toBe("workspace bytes");
      expect(archive.toString("latin1")).not.toContain(SECRET);
    } finally {
      await pinned.close();
    }
    const e = await pinForExport(c, join(root, "dist"), "dist").catch((x: unknown) => x);
    expect(RunnerError.isInstance(e) && e.code === "path_outside_workspace", String(e)).toBe(true);
  });
});
