import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  commandOutcome,
  InvalidDestinationConfigError,
  type RunnerDestination,
  RunnerError,
  SecretInConfigError,
  SessionNotFoundError,
} from "@roder/runner-contract";
import { afterAll, describe, expect, it } from "vitest";
import { createLocalProvider } from "./local-provider.js";
import type { LocalSession } from "./local-session.js";

const provider = createLocalProvider();
const sessions: LocalSession[] = [];
afterAll(async () => {
  for (const s of sessions) await s.close().catch(() => {});
});

function dest(
  config: Record<string, unknown> = {},
  manifest: RunnerDestination["default_manifest"] = { entries: [], mounts: [] },
): RunnerDestination {
  return { id: "t", provider_id: "unix-local", config, default_manifest: manifest };
}
async function open(d: RunnerDestination) {
  const s = await provider.createSession(d);
  sessions.push(s);
  return s;
}
async function caught(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  throw new Error("expected a failure");
}

describe("unix-local specifics", () => {
  it("hides host paths under bwrap and keeps the system read-only, even for root", async () => {
    const secretDir = mkdtempSync(join(tmpdir(), "roder-host-"));
    writeFileSync(join(secretDir, "host-only.txt"), "host");
    const s = await open(dest({ isolation: "bwrap" }));
    const r = await s.runCommand({
      command_id: "c",
      program: "sh",
      args: [
        "-c",
        `test -e ${secretDir}/host-only.txt && echo visible || echo hidden; test -e /root/. && ls /root | wc -l; touch /usr/roder-test 2>/dev/null && echo usr-writable || echo usr-ro; echo x > /tmp/t && echo tmp-ok; touch ./ws-ok && echo ws-ok`,
      ],
    });
    expect(r.stdout).toContain("hidden");
    expect(r.stdout).toContain("usr-ro");
    expect(r.stdout).toContain("tmp-ok");
    expect(r.stdout).toContain("ws-ok");
    expect(existsSync(join(s.info.workspaceRoot, "ws-ok"))).toBe(true);
    // The same command without isolation sees the host file.
    const open2 = await open(dest({ isolation: "none" }));
    const r2 = await open2.runCommand({
      command_id: "c",
      program: "cat",
      args: [join(secretDir, "host-only.txt")],
    });
    expect(r2.stdout).toBe("host");
  });

  it("shows the workspace at workspace_path under bwrap, and maps runner paths for files", async () => {
    const s = await open(dest({ isolation: "bwrap", workspace_path: "/workspace" }));
    expect((s.state().metadata as { workspace_root: string }).workspace_root).toBe("/workspace");
    await s.writeFile({ path: "/workspace/dir/f.txt", contents: new TextEncoder().encode("F") });
    const r = await s.runCommand({
      command_id: "p",
      program: "sh",
      args: ["-c", "pwd; cat f.txt; echo $HOME"],
      cwd: "/workspace/dir",
    });
    expect(r.stdout).toBe("/workspace/dir\nF/workspace\n");
    expect(readFileSync(join(s.info.workspaceRoot, "dir/f.txt"), "utf8")).toBe("F");
    expect(
      InvalidDestinationConfigError.isInstance(
        await caught(provider.validateDestination(dest({ workspace_path: "/workspace" }))),
      ),
    ).toBe(true);
  });

  it("copies manifest entries and makes writable:false entries read-only for root", async () => {
    const src = mkdtempSync(join(tmpdir(), "roder-src-"));
    mkdirSync(join(src, "pkg"));
    writeFileSync(join(src, "pkg", "a.txt"), "A");
    writeFileSync(join(src, "b.txt"), "B");
    const s = await open(
      dest(
        {},
        {
          entries: [
            { source: join(src, "pkg"), target: "ro/pkg", writable: false },
            { source: join(src, "b.txt"), target: "rw/b.txt", writable: true },
          ],
          mounts: [],
        },
      ),
    );
    expect(new TextDecoder().decode((await s.readFile({ path: "ro/pkg/a.txt" })).contents)).toBe("A");
    const r = await s.runCommand({ command_id: "w", program: "sh", args: ["-c", "echo x > ro/pkg/a.txt"] });
    expect(r.exit_code).not.toBe(0);
    expect(r.stderr).toMatch(/Read-only/i);
    const e = await caught(s.writeFile({ path: "ro/pkg/new.txt", contents: new Uint8Array([1]) }));
    expect(RunnerError.isInstance(e) && e.code).toBe("read_only");
    await s.writeFile({ path: "rw/b.txt", contents: new TextEncoder().encode("B2") });
    expect(readFileSync(join(src, "b.txt"), "utf8")).toBe("B");
  });

  it("bind-mounts provider_native host directories, read-only when asked", async () => {
    const host = mkdtempSync(join(tmpdir(), "roder-native-"));
    writeFileSync(join(host, "data.txt"), "native");
    const s = await open(
      dest(
        {},
        {
          entries: [],
          mounts: [
            {
              name: "data",
              path: "mnt/data",
              read_only: true,
              intent: { kind: "provider_native", uri: host },
            },
          ],
        },
      ),
    );
    const r = await s.runCommand({
      command_id: "r",
      program: "sh",
      args: ["-c", "cat mnt/data/data.txt; echo y > mnt/data/new 2>/dev/null || echo refused"],
    });
    expect(r.stdout).toBe("nativerefused\n");
    await s.close();
    expect(readFileSync(join(host, "data.txt"), "utf8")).toBe("native");
  });

  it("runs a command with its cwd in a read root (none and bwrap); elsewhere refused on the host, the sandbox's own under bwrap", async () => {
    const ro = mkdtempSync(join(tmpdir(), "roder-readroot-"));
    writeFileSync(join(ro, "here.txt"), "x");
    for (const isolation of ["none", "bwrap"] as const) {
      const s = await open(dest({ isolation, read_roots: [ro] }));
      const r = await s.runCommand({ command_id: `ls-${isolation}`, program: "ls", cwd: ro });
      expect(r.exit_code, r.stderr).toBe(0);
      expect(r.stdout).toBe("here.txt\n");
      if (isolation === "none") {
        // On the host, a cwd stays in the workspace and the read roots.
        const e = await caught(s.runCommand({ command_id: `no-${isolation}`, program: "ls", cwd: "/etc" }));
        expect(RunnerError.isInstance(e) && e.code === "path_outside_workspace", String(e)).toBe(true);
      } else {
        // In a sandbox, a cwd is any directory of the sandbox's own view; one that does not exist there fails
        // the command, not the host.
        const etc = await s.runCommand({ command_id: "etc", program: "pwd", cwd: "/etc" });
        expect(etc.stdout).toBe("/etc\n");
        const missing = await s.runCommand({ command_id: "missing", program: "pwd", cwd: "/root/nowhere" });
        expect(missing.exit_code).not.toBe(0);
      }
    }
  });

  it("a streamed command whose program does not exist says so on its stderr stream (none and bwrap)", async () => {
    for (const isolation of ["none", "bwrap"] as const) {
      const s = await open(dest({ isolation }));
      const h = await s.startCommand({
        command_id: `missing-${isolation}`,
        program: "no-such-program-roder",
      });
      let streamed = "";
      for await (const c of h.output) if (c.stream === "stderr") streamed += new TextDecoder().decode(c.data);
      const r = await h.wait();
      expect(r.exit_code).toBe(127);
      expect(streamed).toContain("no-such-program-roder");
    }
  });

  it("caps output and marks the cut", async () => {
    const s = await open(dest({ output_limit_bytes: 1000 }));
    const r = await s.runCommand({
      command_id: "big",
      program: "sh",
      args: ["-c", "head -c 5000 /dev/zero | tr '\\0' a"],
    });
    expect(r.stdout.startsWith("a".repeat(1000))).toBe(true);
    expect(commandOutcome(r).stdoutTruncatedBytes).toBe(4000);
  });

  it("kills the whole process group at the timeout, grandchildren included", async () => {
    const s = await open(dest());
    const marker = join(s.info.workspaceRoot, "grandchild-alive");
    const r = await s.runCommand({
      command_id: "g",
      program: "sh",
      args: ["-c", `(sleep 2; touch ${marker}) & sleep 30`],
      timeout_ms: 500,
    });
    expect(r.exit_code).toBeNull();
    await new Promise((res) => setTimeout(res, 2500));
    expect(existsSync(marker)).toBe(false);
  });

  it("does not pass the host environment (secrets included) to commands", async () => {
    process.env.RODER_SECRET_CANARY_TOKEN = "canary-host-secret-1234";
    try {
      const s = await open(dest());
      const r = await s.runCommand({ command_id: "e", program: "env" });
      expect(r.stdout).not.toContain("canary-host-secret-1234");
      expect(r.stdout).toContain(`HOME=${s.info.workspaceRoot}`);
    } finally {
      delete process.env.RODER_SECRET_CANARY_TOKEN;
    }
  });

  it("validates destination configs with typed errors", async () => {
    expect(
      InvalidDestinationConfigError.isInstance(
        await caught(provider.validateDestination(dest({ isolation: "docker" }))),
      ),
    ).toBe(true);
    expect(
      InvalidDestinationConfigError.isInstance(
        await caught(provider.validateDestination(dest({ unknown_key: 1 }))),
      ),
    ).toBe(true);
    expect(
      SecretInConfigError.isInstance(
        await caught(provider.validateDestination(dest({ api_key: "abcd1234" }))),
      ),
    ).toBe(true);
    expect(
      InvalidDestinationConfigError.isInstance(
        await caught(
          provider.validateDestination(
            dest({}, { entries: [{ source: "/nonexistent/x", target: "x", writable: true }], mounts: [] }),
          ),
        ),
      ),
    ).toBe(true);
  });

  it("refuses to resume a closed session and keeps the workspace when asked", async () => {
    const parent = mkdtempSync(join(tmpdir(), "roder-keep-"));
    const s = await provider.createSession(dest({ workspace_dir: parent, delete_on_close: false }));
    await s.writeFile({ path: "kept.txt", contents: new TextEncoder().encode("k") });
    const state = s.state();
    await s.close();
    expect(readFileSync(join(s.info.workspaceRoot, "kept.txt"), "utf8")).toBe("k");
    expect(SessionNotFoundError.isInstance(await caught(provider.resumeSession(state)))).toBe(true);
  });
});
