import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RunnerError } from "@roder/runner-contract";
import { createLocalProvider } from "@roder/runner-local";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHttpRunnerProvider } from "./http-provider.js";
import { createRunnerServer, type RunnerServer } from "./http-server.js";

const TOKEN = "host-paths-token-81f0";
const hostDir = mkdtempSync(join(tmpdir(), "roder-host-secret-"));
const HOST_SECRET = "contents-of-a-server-file-3d9a";
writeFileSync(join(hostDir, "secret.txt"), HOST_SECRET);
let strict: RunnerServer;
let open: RunnerServer;
let strictUrl = "";
let openUrl = "";

beforeAll(async () => {
  strict = createRunnerServer({
    provider: createLocalProvider(),
    token: TOKEN,
    enforceConfig: { isolation: "bwrap" },
  });
  strictUrl = (await strict.listen(0)).url;
  open = createRunnerServer({ provider: createLocalProvider(), token: TOKEN, allowHostPaths: true });
  openUrl = (await open.listen(0)).url;
});
afterAll(async () => {
  await strict.close();
  await open.close();
});

const env = { RODER_RUNNER_HTTP_TOKEN: TOKEN };
const dest = (config: unknown, entries: unknown[] = [], mounts: unknown[] = []) =>
  ({ id: "d", provider_id: "http", config, default_manifest: { entries, mounts } }) as never;

describe("a token holder cannot read the server's own files", () => {
  it("refuses manifest entry sources, provider_native mounts and host-path config keys by default", async () => {
    const p = createHttpRunnerProvider({ baseUrl: strictUrl, env });
    const attempts = [
      dest({ backend_config: {} }, [
        { source: join(hostDir, "secret.txt"), target: "s.txt", writable: false },
      ]),
      dest(
        { backend_config: {} },
        [],
        [{ name: "n", path: "mnt/n", read_only: true, intent: { kind: "provider_native", uri: hostDir } }],
      ),
      dest({ backend_config: { read_roots: [hostDir] } }),
      dest({ backend_config: { workspace_dir: hostDir } }),
      dest({ backend_config: { snapshot_dir: hostDir } }),
    ];
    for (const d of attempts) {
      const e = await p.createSession(d).catch((x: unknown) => x);
      expect(RunnerError.isInstance(e) && e.code === "host_paths_refused", String(e)).toBe(true);
      expect(String((e as Error).message)).toContain("allowHostPaths");
    }
    expect(strict.sessionCount()).toBe(0);
  });

  it("enforces the server's config over the client's (isolation bwrap hides the host)", async () => {
    const p = createHttpRunnerProvider({ baseUrl: strictUrl, env });
    const s = await p.createSession(dest({ backend_config: { isolation: "none" } }));
    const r = await s.runCommand({ command_id: "c", program: "cat", args: [join(hostDir, "secret.txt")] });
    expect(r.exit_code).not.toBe(0);
    expect(r.stdout).not.toContain(HOST_SECRET);
    await s.close();
  });

  it("allows them when the server is started with allowHostPaths", async () => {
    const p = createHttpRunnerProvider({ baseUrl: openUrl, env });
    const s = await p.createSession(
      dest({ backend_config: {} }, [
        { source: join(hostDir, "secret.txt"), target: "s.txt", writable: false },
      ]),
    );
    expect(new TextDecoder().decode((await s.readFile({ path: "s.txt" })).contents)).toBe(HOST_SECRET);
    await s.close();
  });
});
