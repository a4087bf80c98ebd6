import { randomUUID } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type RunnerSessionState, SessionNotFoundError } from "@roder/runner-contract";
import { runScript } from "@roder/runner-testkit";
import { afterAll, describe, expect, it } from "vitest";
import { createLocalProvider } from "./local-provider.js";

const registryDir = mkdtempSync(join(tmpdir(), "roder-resume-registry-"));
afterAll(() => rmSync(registryDir, { recursive: true, force: true }));

/** Live processes whose command line or environment names `needle` (a session id). */
function processesOf(needle: string): number[] {
  const out: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      const cmd = readFileSync(`/proc/${name}/cmdline`);
      const env = readFileSync(`/proc/${name}/environ`);
      if (cmd.includes(needle) || env.includes(needle)) out.push(Number(name));
    } catch {}
  }
  return out;
}

async function settle(pred: () => boolean, ms = 5000): Promise<boolean> {
  const until = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > until) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
  return true;
}

const sh = (script: string) => ({
  command_id: `c-${randomUUID().slice(0, 8)}`,
  program: "sh",
  args: ["-c", script],
  timeout_ms: 30_000,
});

describe.each(["bwrap", "none"] as const)(
  "unix-local (isolation %s): one sandbox across processes",
  (isolation) => {
    it("a session made and left by another process is resumed with its /tmp and its processes; close ends them", async () => {
      const token = randomUUID();
      const run = await runScript("packages/local/src/__fixtures__/start-sandbox.ts", {
        env: { REGISTRY_DIR: registryDir, TOKEN: token, ISOLATION: isolation },
      });
      expect(run.code, run.stderr).toBe(0);
      const state = JSON.parse(run.stdout) as RunnerSessionState;
      // As root here, a session without isolation gets a cgroup of its own.
      expect((state.metadata as Record<string, unknown>).process_tracking).toBe(
        isolation === "bwrap" ? "sandbox" : "cgroup",
      );
      // The maker is gone; its sandbox and background process are not.
      expect(processesOf(state.session_id).length).toBeGreaterThan(0);
      const session = await createLocalProvider({ registryDir }).resumeSession(state);
      const tmp = await session.runCommand(sh("cat /tmp/kept"));
      expect(tmp.stdout).toBe(token);
      // The background process of the other process's command is still there (found from inside for bwrap).
      const sleeping = await session.runCommand(sh("ps -e -o args= | grep -c '^[s]leep 600' || true"));
      expect(Number(sleeping.stdout.trim())).toBeGreaterThan(0);
      await session.close();
      expect(await settle(() => processesOf(state.session_id).length === 0)).toBe(true);
      await expect(createLocalProvider({ registryDir }).resumeSession(state)).rejects.toSatisfy((e) =>
        SessionNotFoundError.isInstance(e),
      );
    });
  },
);

describe("unix-local (bwrap): a sandbox that ended is started again over the same workspace", () => {
  it("restarts it, says so in the state, and keeps the workspace", async () => {
    const provider = createLocalProvider({ registryDir });
    const session = await provider.createSession({
      id: "restart",
      provider_id: "unix-local",
      config: { isolation: "bwrap" },
      default_manifest: { entries: [], mounts: [] },
    });
    try {
      await session.writeFile({ path: "kept.txt", contents: new TextEncoder().encode("still here") });
      await session.runCommand(sh("echo gone > /tmp/lost"));
      const entry = JSON.parse(readFileSync(join(registryDir, `${session.state().session_id}.json`), "utf8"));
      // The machine "restarts": everything of the sandbox is killed from outside.
      process.kill(entry.sandbox.init.pid, "SIGKILL");
      await settle(() => !existsSync(`/proc/${entry.sandbox.init.pid}`));
      const r = await session.runCommand(sh("cat kept.txt; cat /tmp/lost 2>/dev/null || echo no-tmp"));
      expect(r.stdout).toBe("still hereno-tmp\n");
      expect((session.state().metadata as Record<string, unknown>).sandbox_restarts).toBe(1);
    } finally {
      await session.close();
    }
  });
});

describe("unix-local: a state cannot lower what the session was made with", () => {
  it("a bwrap session resumed from a state that says isolation none still runs its commands in the sandbox", async () => {
    const provider = createLocalProvider({ registryDir });
    const session = await provider.createSession({
      id: "lowered",
      provider_id: "unix-local",
      config: { isolation: "bwrap" },
      default_manifest: { entries: [], mounts: [] },
    });
    try {
      const state = session.state();
      const meta = state.metadata as { config: Record<string, unknown> };
      const lowered = {
        ...state,
        metadata: { ...meta, config: { ...meta.config, isolation: "none", network: "host" } },
      } as RunnerSessionState;
      const resumed = await createLocalProvider({ registryDir }).resumeSession(lowered);
      const r = await resumed.runCommand(sh("grep CapEff /proc/self/status; cat /proc/1/comm"));
      expect(r.stdout).toMatch(/CapEff:\s+0000000000000000/);
      expect(r.stdout).not.toMatch(/systemd|init\n/);
      expect((resumed.state().metadata as { config: { isolation: string } }).config.isolation).toBe("bwrap");
    } finally {
      await session.close();
    }
  });
});

describe("unix-local: a state file is hostile until checked", () => {
  it("a state naming another directory as its workspace is refused, and nothing is deleted", async () => {
    const provider = createLocalProvider({ registryDir });
    const session = await provider.createSession({
      id: "victim-check",
      provider_id: "unix-local",
      config: { isolation: "none" },
      default_manifest: { entries: [], mounts: [] },
    });
    const victim = mkdtempSync(join(tmpdir(), "roder-victim-"));
    writeFileSync(join(victim, "precious"), "data");
    try {
      const state = session.state();
      const evil = {
        ...state,
        metadata: {
          ...(state.metadata as object),
          workspace_root: victim,
          host_root: victim,
          binds: ["/proc"],
        },
      } as RunnerSessionState;
      await expect(createLocalProvider({ registryDir }).resumeSession(evil)).rejects.toSatisfy((e) =>
        SessionNotFoundError.isInstance(e),
      );
      // A forged session id with a registry of its own choosing is refused too.
      const forged = {
        ...evil,
        session_id: `local-${randomUUID()}`,
        metadata: { ...(evil.metadata as object), registry_dir: victim },
      } as RunnerSessionState;
      writeFileSync(
        join(victim, `${forged.session_id}.json`),
        JSON.stringify({ workspace_root: victim, binds: [] }),
      );
      await expect(createLocalProvider({ registryDir }).resumeSession(forged)).rejects.toSatisfy((e) =>
        SessionNotFoundError.isInstance(e),
      );
      expect(readFileSync(join(victim, "precious"), "utf8")).toBe("data");
    } finally {
      await session.close();
      rmSync(victim, { recursive: true, force: true });
    }
  });
});
