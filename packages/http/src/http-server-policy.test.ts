import { existsSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { RunnerError } from "@roder/runner-contract";
import { createLocalProvider } from "@roder/runner-local";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHttpRunnerProvider } from "./http-provider.js";
import { createRunnerServer, type RunnerServer, type RunnerServerOptions } from "./http-server.js";
import { scrubHostPaths } from "./http-server-scrub.js";

// Red-team cases of issue 14 (item 6) and 15: what a token holder may not ask of the operator's server.
const TOKEN = "policy-token-5b1e";
const CANARY = "server-env-canary-9d27c1";
process.env.RODER_SECRET_POLICY_CANARY_VALUE = CANARY;
const auth = { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" };
const servers: RunnerServer[] = [];

async function start(options: Omit<RunnerServerOptions, "provider" | "token"> = {}) {
  const server = createRunnerServer({ provider: createLocalProvider(), token: TOKEN, ...options });
  servers.push(server);
  return { server, url: (await server.listen(0)).url };
}

let bwrap: { server: RunnerServer; url: string };
let plain: { server: RunnerServer; url: string };

beforeAll(async () => {
  bwrap = await start({ isolation: "bwrap" });
  plain = await start();
});
afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
});

const create = (url: string, config: unknown, extra: Record<string, unknown> = {}) =>
  fetch(`${url}/sessions`, {
    method: "POST",
    headers: auth,
    body: JSON.stringify({ destination_id: "d", provider_id: "modal", config, ...extra }),
  });
const del = (url: string, id: string) => fetch(`${url}/sessions/${id}`, { method: "DELETE", headers: auth });

async function refusal(res: Response) {
  const body = (await res.json()) as { error: { code: string; message: string } };
  return { status: res.status, ...body.error };
}

describe("keys that weaken isolation or retention are the operator's", () => {
  it("refuses them with a typed 403 naming the key and how the operator allows it", async () => {
    const cases: Array<[string, unknown, string, RegExp]> = [
      [bwrap.url, { isolation: "bwrap", bwrap_unshare_pid: false }, "bwrap_unshare_pid", /enforceConfig/],
      [plain.url, { bwrap_unshare_pid: false }, "bwrap_unshare_pid", /enforceConfig/],
      [bwrap.url, { isolation: "none" }, "isolation", /--isolation none/],
      [bwrap.url, { network: "host" }, "network", /--allow-host-network/],
      [plain.url, { network: "host" }, "network", /--allow-host-network/],
      [plain.url, { delete_on_close: false }, "delete_on_close", /--allow-keep-workspaces/],
      [plain.url, { output_limit_bytes: 1024 * 1024 * 1024 }, "output_limit_bytes", /--max-output-bytes/],
      // Nested the way this package's own client sends it.
      [bwrap.url, { backend_config: { bwrap_unshare_pid: false } }, "bwrap_unshare_pid", /enforceConfig/],
    ];
    for (const [url, config, key, how] of cases) {
      const r = await refusal(await create(url, config));
      expect(r, JSON.stringify(config)).toMatchObject({ status: 403, code: "config_refused" });
      expect(r.message).toContain(`config.${key}`);
      expect(r.message).toMatch(how);
      // Readable after the Rust client's redaction of these words.
      expect(r.message).not.toMatch(/token|secret|api_key|authorization/);
    }
    expect(bwrap.server.sessionCount() + plain.server.sessionCount()).toBe(0);
  });

  it("comes back from the HTTP client as a typed RunnerError, not as a credential failure", async () => {
    const p = createHttpRunnerProvider({ baseUrl: bwrap.url, env: { RODER_RUNNER_HTTP_TOKEN: TOKEN } });
    const e = await p
      .createSession({
        id: "d",
        provider_id: "http",
        config: { backend_config: { bwrap_unshare_pid: false } },
        default_manifest: { entries: [], mounts: [] },
      })
      .catch((x: unknown) => x);
    expect(RunnerError.isInstance(e) && e.code).toBe("config_refused");
  });

  it("under enforced bubblewrap a command sees neither the server's process nor its environment", async () => {
    const res = await create(bwrap.url, {});
    expect(res.status).toBe(201);
    const { session_id } = (await res.json()) as { session_id: string };
    const run = await fetch(`${bwrap.url}/sessions/${session_id}/commands`, {
      method: "POST",
      headers: auth,
      body: JSON.stringify({
        command_id: "peek",
        program: "sh",
        args: [
          "-c",
          `cat /proc/${process.pid}/environ; ls /proc/${process.pid}/root/etc >/dev/null && echo HOSTROOT`,
        ],
      }),
    });
    const out = (await run.json()) as { stdout: string; stderr: string };
    expect(out.stdout).not.toContain(CANARY);
    expect(out.stdout).not.toContain("HOSTROOT");
    await del(bwrap.url, session_id);
  });

  it("lets the operator allow them, and lets clients raise what is enforced", async () => {
    const keep = await start({
      allowKeepWorkspaces: true,
      allowHostNetwork: true,
      maxOutputLimitBytes: 64 << 20,
    });
    const res = await create(keep.url, { delete_on_close: false, output_limit_bytes: 64 << 20 });
    expect(res.status).toBe(201);
    const { session_id, workspace_root } = (await res.json()) as {
      session_id: string;
      workspace_root: string;
    };
    await del(keep.url, session_id);
    expect(existsSync(workspace_root)).toBe(true);
    rmSync(workspace_root, { recursive: true, force: true });
    // network host is not refused by the policy (the backend uses or ignores it).
    const host = await create(keep.url, { network: "host" });
    expect(host.status).toBe(201);
    await del(keep.url, ((await host.json()) as { session_id: string }).session_id);
    // A client may always ask for more isolation than the operator enforces.
    const more = await create(plain.url, {
      isolation: "bwrap",
      bwrap_unshare_pid: true,
      delete_on_close: true,
    });
    expect(more.status).toBe(201);
    await del(plain.url, ((await more.json()) as { session_id: string }).session_id);
  });

  it("pins the operator's keys and says so in the create answer", async () => {
    const pinned = await start({ isolation: "bwrap", enforceConfig: { workspace_path: "/workspace" } });
    const res = await create(pinned.url, { isolation: "bwrap", workspace_path: "/elsewhere" });
    expect(res.status).toBe(201);
    const body = (await res.json()) as {
      session_id: string;
      workspace_root: string;
      pinned_config_keys: string[];
    };
    expect(body.pinned_config_keys).toEqual(["workspace_path"]);
    expect(body.workspace_root).toBe("/workspace");
    // Error bodies show runner paths, never the host workspace path or the backend's session id.
    for (const [method, path] of [
      ["GET", "missing/file.txt"],
      ["GET", "."],
      ["GET", "/workspace/../proc/self/root/etc/shadow"],
    ] as const) {
      const r = await fetch(
        `${pinned.url}/sessions/${body.session_id}/files?path=${encodeURIComponent(path)}`,
        {
          method,
          headers: auth,
        },
      );
      const text = await r.text();
      expect(r.status, `${path}: ${text}`).toBeGreaterThanOrEqual(400);
      expect(text).not.toMatch(/roder-local-|local-[0-9a-f]{8}-/);
    }
    await del(pinned.url, body.session_id);
  });
});

describe("the server's bucket credentials go only where its operator allows", () => {
  it("refuses a client-chosen endpoint for a secret ref (artifacts, mounts, https mount URIs)", async () => {
    const attempts: Array<[unknown, Record<string, unknown>]> = [
      [
        { artifacts: { kind: "s3", bucket: "b", endpoint: "http://127.0.0.1:9/evil", secret: { id: "x" } } },
        {},
      ],
      [
        {},
        {
          mounts: [
            {
              kind: "s3",
              bucket: "bkt",
              path: "m",
              endpoint: "http://attacker.example",
              secret: { id: "x" },
            },
          ],
        },
      ],
      [
        {},
        {
          manifest: {
            entries: [],
            mounts: [
              {
                name: "az",
                path: "az",
                read_only: true,
                intent: { kind: "azure_blob", uri: "https://attacker.example/c", credentials: { id: "x" } },
              },
            ],
          },
        },
      ],
    ];
    for (const [config, extra] of attempts) {
      const r = await refusal(await create(plain.url, config, extra));
      expect(r, JSON.stringify([config, extra])).toMatchObject({ status: 403, code: "config_refused" });
      expect(r.message).toContain("--allow-endpoint");
      expect(r.message).not.toMatch(/token|secret|api_key|authorization/);
    }
  });
});

describe("what the server advertises is what it allows", () => {
  it("capabilities drop provider_native mounts unless host paths are allowed, and list the policy", async () => {
    const caps = (await (await fetch(`${bwrap.url}/capabilities`, { headers: auth })).json()) as {
      capabilities: { mounts: { provider_native: boolean } };
      limits: { policy: { isolation: string; host_network: boolean } };
    };
    expect(caps.capabilities.mounts.provider_native).toBe(false);
    expect(caps.limits.policy).toMatchObject({ isolation: "bwrap", host_network: false });
    const open = await start({ allowHostPaths: true });
    const openCaps = (await (await fetch(`${open.url}/capabilities`, { headers: auth })).json()) as {
      capabilities: { mounts: { provider_native: boolean } };
    };
    expect(openCaps.capabilities.mounts.provider_native).toBe(process.getuid?.() === 0);
  });
});

describe("vendor keys", () => {
  it("are refused with strictConfig, naming them", async () => {
    const strict = await start({ strictConfig: true });
    const res = await create(strict.url, { template: "base", region: "iad" });
    const r = await refusal(res);
    expect(r).toMatchObject({ status: 400, code: "invalid_destination_config" });
    expect(r.message).toContain("template, region");
  });

  it("lose their redacted values at any depth, listed by path", async () => {
    const res = await create(plain.url, { isolation: "none", vendor: { secret: "<redacted>", zone: "a" } });
    const body = (await res.json()) as { session_id: string; ignored_config_keys: string[] };
    expect(res.status).toBe(201);
    expect(body.ignored_config_keys).toEqual(["vendor.secret", "vendor"]);
    await del(plain.url, body.session_id);
  });

  it("are ignored by the known-keys list when the operator gives one", async () => {
    const listed = await start({ backendConfigKeys: ["isolation"] });
    const res = await create(listed.url, { isolation: "none", template: "base" });
    const body = (await res.json()) as { session_id: string; ignored_config_keys: string[] };
    expect(body.ignored_config_keys).toEqual(["template"]);
    await del(listed.url, body.session_id);
  });
});

describe("hostile bodies and idle sessions", () => {
  it("refuses deeply nested config with a 400, not a stack overflow", async () => {
    const n = 50_000;
    const body = `{"destination_id":"d","config":${'{"a":'.repeat(n)}{}${"}".repeat(n)}}`;
    const res = await fetch(`${plain.url}/sessions`, { method: "POST", headers: auth, body });
    expect(await refusal(res)).toMatchObject({ status: 400, code: "invalid_request" });
    // And the server still answers.
    expect((await fetch(`${plain.url}/capabilities`, { headers: auth })).status).toBe(200);
  });

  it("closes a session without TTL once idle, never while a request runs; a late DELETE is a 204", async () => {
    const idle = await start({ defaultTtlSeconds: 1 });
    const a = ((await (await create(idle.url, {})).json()) as { session_id: string }).session_id;
    const b = ((await (await create(idle.url, {})).json()) as { session_id: string }).session_id;
    // b runs a command that outlasts the idle time; a does nothing.
    const busy = fetch(`${idle.url}/sessions/${b}/commands`, {
      method: "POST",
      headers: auth,
      body: JSON.stringify({ command_id: "slow", program: "sleep", args: ["2"] }),
    });
    await new Promise((r) => setTimeout(r, 1500));
    expect(await idle.server.reapExpired()).toEqual([a]);
    expect((await busy).status).toBe(200);
    expect((await fetch(`${idle.url}/sessions/${b}`, { headers: auth })).status).toBe(200);
    expect((await del(idle.url, a)).status).toBe(204);
    expect((await del(idle.url, b)).status).toBe(204);
    expect((await del(idle.url, b)).status).toBe(204);
    expect((await del(idle.url, "not-a-session-id")).status).toBe(404);
  });

  it("401 reads the same after the Rust client's redaction of token, secret, api_key, authorization", async () => {
    const res = await fetch(`${plain.url}/capabilities`);
    const text = await res.text();
    expect(res.status).toBe(401);
    expect(text).not.toMatch(/token|secret|api_key|authorization/);
    expect(text).toContain("bearer credential");
  });
});

describe("the client's bearer credential goes only to the server it was configured for", () => {
  it("refuses a state or destination naming another URL, naming both, and sends nothing there", async () => {
    const { createServer } = await import("node:http");
    const seen: string[] = [];
    const evil = createServer((req, res) => {
      seen.push(req.headers.authorization ?? "");
      res.end("{}");
    });
    await new Promise<void>((r) => evil.listen(0, "127.0.0.1", r));
    const evilUrl = `http://127.0.0.1:${(evil.address() as { port: number }).port}`;
    try {
      const p = createHttpRunnerProvider({
        env: { RODER_RUNNER_HTTP_TOKEN: TOKEN, RODER_RUNNER_HTTP_URL: plain.url },
      });
      const state = {
        provider_id: "http",
        session_id: "ses_00000000000000000000000000000000",
        destination_id: "d",
        snapshot: null,
        metadata: { base_url: evilUrl },
      };
      const e = await p.resumeSession(state).catch((x: unknown) => x);
      expect(RunnerError.isInstance(e) && e.code).toBe("invalid_destination_config");
      expect(String((e as Error).message)).toContain(evilUrl);
      expect(String((e as Error).message)).toContain(plain.url);
      const d = await p
        .createSession({
          id: "d",
          provider_id: "http",
          config: { base_url: evilUrl },
          default_manifest: { entries: [], mounts: [] },
        })
        .catch((x: unknown) => x);
      expect(RunnerError.isInstance(d) && d.code).toBe("invalid_destination_config");
      expect(seen).toEqual([]);
    } finally {
      evil.close();
    }
  });
});

describe("limits a client cannot get past", () => {
  it("refuses timeout_ms past what a timer can hold (it would fire after 1 ms)", async () => {
    const res = await create(plain.url, {});
    const { session_id } = (await res.json()) as { session_id: string };
    const run = await fetch(`${plain.url}/sessions/${session_id}/commands`, {
      method: "POST",
      headers: auth,
      body: JSON.stringify({ command_id: "t", program: "true", timeout_ms: 2 ** 31 }),
    });
    expect(await refusal(run)).toMatchObject({ status: 400, code: "invalid_request" });
    await del(plain.url, session_id);
  });

  it("closes connections whose headers never finish, and answers others meanwhile", async () => {
    const { connect } = await import("node:net");
    const slow = await start({ headersTimeoutMs: 1000 });
    const port = Number(new URL(slow.url).port);
    const sockets = Array.from({ length: 50 }, () => {
      const s = connect(port, "127.0.0.1");
      s.on("error", () => {});
      s.resume();
      s.write("GET /capabilities HTTP/1.1\r\nHost: x\r\nx-slow: ");
      return new Promise<void>((r) => s.on("close", () => r()));
    });
    expect((await fetch(`${slow.url}/capabilities`, { headers: auth })).status).toBe(200);
    // Every half-open connection is closed by the server (the test would time out otherwise).
    await Promise.all(sockets);
  });
});

describe("scrubHostPaths", () => {
  it("replaces a session's host root and backend id, and backend paths under the server's temp dir", () => {
    const host = `${tmpdir()}/roder-local-0/local-1111aaaa-2222-3333-4444-555566667777`;
    const msg = `no such file ${host}/a.txt in local-1111aaaa-2222-3333-4444-555566667777; snapshot at ${tmpdir()}/roder-local-snapshots/s.tgz`;
    expect(
      scrubHostPaths(msg, [
        [host, "/workspace"],
        ["local-1111aaaa-2222-3333-4444-555566667777", "ses_x"],
      ]),
    ).toBe("no such file /workspace/a.txt in ses_x; snapshot at <server path>");
  });
});

describe("session and snapshot caps", () => {
  it("refuses a session past maxSessions with a 429, and forgets a deleted snapshot", async () => {
    const capped = await start({ maxSessions: 2 });
    const ids: string[] = [];
    for (let i = 0; i < 2; i++) {
      const r = await create(capped.url, {});
      expect(r.status).toBe(201);
      ids.push(((await r.json()) as { session_id: string }).session_id);
    }
    expect(await refusal(await create(capped.url, {}))).toMatchObject({
      status: 429,
      code: "too_many_sessions",
    });
    const snap = await fetch(`${capped.url}/sessions/${ids[0]}/snapshots`, { method: "POST", headers: auth });
    const ref = ((await snap.json()) as { snapshot: { snapshot_id: string } }).snapshot;
    await del(capped.url, ids[0]!);
    const gone = () =>
      fetch(`${capped.url}/snapshots/${ref.snapshot_id}`, { method: "DELETE", headers: auth });
    expect((await gone()).status).toBe(204);
    expect((await gone()).status).toBe(204);
    const restore = await create(capped.url, null, { snapshot: ref });
    expect(await refusal(restore)).toMatchObject({ status: 404, code: "not_found" });
    await del(capped.url, ids[1]!);
  });
});

describe("connections that never finish their headers", () => {
  it("cannot lock out a client at the connection cap: the oldest of them is evicted", async () => {
    const { connect } = await import("node:net");
    const capped = await start({ maxConnections: 20 });
    const port = Number(new URL(capped.url).port);
    const closed: Array<Promise<void>> = [];
    for (let i = 0; i < 40; i++) {
      const s = connect(port, "127.0.0.1");
      s.on("error", () => {});
      s.resume();
      closed.push(new Promise<void>((r) => s.on("close", () => r())));
      await new Promise<void>((r) => s.on("connect", () => r()));
      s.write("GET /capabilities HTTP/1.1\r\nHost: x\r\nx-slow: ");
    }
    // Default headers timeout (30 s): without eviction this fetch's connection would be dropped at once.
    expect((await fetch(`${capped.url}/capabilities`, { headers: auth })).status).toBe(200);
    // At least the 20 evicted ones are gone already.
    const settled = await Promise.race([
      Promise.all(closed.slice(0, 20)).then(() => true),
      new Promise((r) => setTimeout(() => r(false), 5000)),
    ]);
    expect(settled).toBe(true);
  });
});
