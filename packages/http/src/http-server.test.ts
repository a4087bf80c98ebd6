import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import {
  codecs,
  ProviderApiError,
  RunnerError,
  SessionNotFoundError,
  UnsupportedCapabilityError,
} from "@roder/runner-contract";
import { createLocalProvider } from "@roder/runner-local";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHttpRunnerProvider } from "./http-provider.js";
import { createRunnerServer, type RunnerServer } from "./http-server.js";

const golden = resolve(dirname(fileURLToPath(import.meta.url)), "../../../../shared/fixtures/rust-golden");
const fixture = (type: string, name: string) => JSON.parse(readFileSync(resolve(golden, type, name), "utf8"));

const TOKEN = "server-token-3f6a2b9c8d";
let server: RunnerServer;
let url = "";
const log: Array<{ method: string; path: string; status: number }> = [];

beforeAll(async () => {
  server = createRunnerServer({
    provider: createLocalProvider(),
    token: TOKEN,
    maxFileBytes: 1024 * 1024,
    onRequest: (e) => log.push(e),
  });
  url = (await server.listen(0)).url;
});
afterAll(async () => {
  await server.close();
});

const auth = { authorization: `Bearer ${TOKEN}` };

describe("the Rust generic hosted client's request sequence", () => {
  it("is answered with bodies that decode with the contract's codecs", async () => {
    // Exactly what roder-ext-runner-hosted-common sends: JSON bodies from serde_json::to_vec, bearer auth,
    // content-type only on JSON bodies, raw bytes for file writes, an empty POST for snapshots.
    const create = await fetch(`${url}/sessions`, {
      method: "POST",
      headers: { ...auth, "content-type": "application/json" },
      // Vendor keys of the hosted services it serves, and its redacted values, as it sends them.
      body: `{"destination_id":"thread-dest","provider_id":"modal","manifest":{"entries":[],"mounts":[]},"config":{"base_url":"${url}","token":"<redacted>","api_key":"<redacted>","template":"base","region":"iad","timeout":300,"vendor_secret_ref":"<redacted>"}}`,
    });
    expect(create.status).toBe(201);
    const created = (await create.json()) as {
      session_id: string;
      snapshot: unknown;
      ignored_config_keys: string[];
    };
    expect(created.session_id).toMatch(/^ses_[0-9a-f]{32}$/);
    expect(created.snapshot).toBeNull();
    // Keys the backend does not know are ignored and listed; the client's own keys are not the backend's.
    expect([...created.ignored_config_keys].sort()).toEqual([
      "region",
      "template",
      "timeout",
      "vendor_secret_ref",
    ]);
    const base = `${url}/sessions/${created.session_id}`;

    expect((await fetch(base, { headers: auth })).status).toBe(200);

    const put = await fetch(`${base}/files?path=${encodeURIComponent("workspace/hello world.bin")}`, {
      method: "PUT",
      headers: auth,
      body: new Uint8Array([0, 1, 2, 255]),
    });
    expect(put.status).toBe(204);

    const cmd = fixture("RunnerCommandRequest", "upstream_test.json");
    const run = await fetch(`${base}/commands`, {
      method: "POST",
      headers: { ...auth, "content-type": "application/json" },
      body: cmd.compact,
    });
    expect(run.status).toBe(200);
    const result = codecs.RunnerCommandResult.decode(await run.text());
    expect(result).toEqual({ command_id: "cmd-1", exit_code: 0, stdout: "hi\n", stderr: "" });

    const cancel = await fetch(`${base}/commands/cmd-1`, { method: "DELETE", headers: auth });
    expect(await cancel.json()).toEqual({ cancelled: false });

    const read = await fetch(`${base}/files?path=${encodeURIComponent("workspace/hello world.bin")}`, {
      headers: auth,
    });
    expect(new Uint8Array(await read.arrayBuffer())).toEqual(new Uint8Array([0, 1, 2, 255]));

    const port = await fetch(`${base}/ports`, {
      method: "POST",
      headers: { ...auth, "content-type": "application/json" },
      body: '{"port":3000,"label":null}',
    });
    // A URL of this server (which proxies to the port), not the backend's loopback.
    expect(codecs.RunnerPortResult.decode(await port.text())).toEqual({
      port: 3000,
      url: expect.stringMatching(new RegExp(`^${url}/previews/pv_[0-9a-f]{32}/$`)),
    });

    const artifact = await fetch(`${base}/artifacts`, {
      method: "POST",
      headers: { ...auth, "content-type": "application/json" },
      body: '{"path":"workspace/hello world.bin","recursive":false}',
    });
    expect(artifact.status).toBe(501);
    expect(((await artifact.json()) as { error: { code: string } }).error.code).toBe(
      "unsupported_capability",
    );

    const snap = await fetch(`${base}/snapshots`, { method: "POST", headers: auth });
    const snapText = await snap.text();
    // The client's provider id and an opaque id: no backend id, no host path, no backend session id.
    const ref = codecs.RunnerSnapshotRef.parse((JSON.parse(snapText) as { snapshot: unknown }).snapshot);
    expect(ref).toEqual({
      provider_id: "modal",
      snapshot_id: expect.stringMatching(/^snp_[0-9a-f]{32}$/),
      metadata: null,
    });
    expect(snapText).not.toMatch(/unix-local|local-[0-9a-f]{8}|\/tmp\//);

    expect((await fetch(base, { method: "DELETE", headers: auth })).status).toBe(204);
    expect((await fetch(base, { headers: auth })).status).toBe(404);
    // The Rust client treats any non-2xx as an error: a second close (a retry, after an expiry) is a 204.
    expect((await fetch(base, { method: "DELETE", headers: auth })).status).toBe(204);

    // The snapshot restores through the opaque ref, with the file in it.
    const restored = await fetch(`${url}/sessions`, {
      method: "POST",
      headers: { ...auth, "content-type": "application/json" },
      body: JSON.stringify({ destination_id: "thread-dest", provider_id: "modal", snapshot: ref }),
    });
    expect(restored.status).toBe(201);
    const again = `${url}/sessions/${((await restored.json()) as { session_id: string }).session_id}`;
    const back = await fetch(`${again}/files?path=${encodeURIComponent("workspace/hello world.bin")}`, {
      headers: auth,
    });
    expect(new Uint8Array(await back.arrayBuffer())).toEqual(new Uint8Array([0, 1, 2, 255]));
    expect((await fetch(again, { method: "DELETE", headers: auth })).status).toBe(204);
  });
});

describe("server", () => {
  it("refuses missing, wrong and same-length wrong tokens", async () => {
    const wrong = TOKEN.replace(/.$/, (c) => (c === "x" ? "y" : "x"));
    for (const headers of [
      {},
      { authorization: "Bearer nope" },
      { authorization: `Bearer ${wrong}` },
      { authorization: TOKEN },
    ]) {
      const res = await fetch(`${url}/capabilities`, { headers: headers as Record<string, string> });
      expect(res.status).toBe(401);
      expect(await res.text()).not.toContain(TOKEN);
    }
  });

  it("answers bad bodies with 400 and a message naming the field", async () => {
    const create = await fetch(`${url}/sessions`, {
      method: "POST",
      headers: { ...auth, "content-type": "application/json" },
      body: "{}",
    });
    expect(create.status).toBe(400);
    expect(((await create.json()) as { error: { message: string } }).error.message).toContain(
      "destination_id",
    );
    const c = (await (
      await fetch(`${url}/sessions`, { method: "POST", headers: auth, body: '{"destination_id":"d"}' })
    ).json()) as { session_id: string };
    const bad = await fetch(`${url}/sessions/${c.session_id}/commands`, {
      method: "POST",
      headers: auth,
      body: '{"command_id":"x","program":"ls","args":"-la"}',
    });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { code: string; message: string } }).error).toMatchObject({
      code: "wire_decode",
      message: expect.stringContaining("args"),
    });
    const escaped = await fetch(`${url}/sessions/${c.session_id}/files?path=../../etc/passwd`, {
      headers: auth,
    });
    expect(escaped.status).toBe(400);
    const big = await fetch(`${url}/sessions/${c.session_id}/files?path=big.bin`, {
      method: "PUT",
      headers: auth,
      body: new Uint8Array(2 * 1024 * 1024),
    });
    expect(big.status).toBe(413);
    await fetch(`${url}/sessions/${c.session_id}`, { method: "DELETE", headers: auth });
  });

  it("keeps sessions apart: one session's id cannot reach another's files", async () => {
    const provider = createHttpRunnerProvider({ baseUrl: url, env: { RODER_RUNNER_HTTP_TOKEN: TOKEN } });
    const dest = {
      id: "d",
      provider_id: "http",
      config: null,
      default_manifest: { entries: [], mounts: [] },
    };
    const a = await provider.createSession(dest);
    const b = await provider.createSession(dest);
    await a.writeFile({ path: "only-a.txt", contents: new TextEncoder().encode("a") });
    await expect(b.readFile({ path: "only-a.txt" })).rejects.toThrow();
    const rootA = (a.state().metadata as { workspace_root: string }).workspace_root;
    const err = await b.readFile({ path: `${rootA}/only-a.txt` }).catch((e) => e);
    expect(RunnerError.isInstance(err)).toBe(true);
    await a.close();
    await b.close();
  });

  it("streams output before the command ends", async () => {
    const provider = createHttpRunnerProvider({ baseUrl: url, env: { RODER_RUNNER_HTTP_TOKEN: TOKEN } });
    const s = await provider.createSession({
      id: "d",
      provider_id: "http",
      config: null,
      default_manifest: { entries: [], mounts: [] },
    });
    const handle = await s.startCommand!({
      command_id: "s",
      program: "sh",
      args: ["-c", "echo first; sleep 2; echo second"],
    });
    const start = Date.now();
    const it = handle.output[Symbol.asyncIterator]();
    const first = await it.next();
    expect(Date.now() - start).toBeLessThan(1500);
    expect(new TextDecoder().decode(first.value!.data)).toBe("first\n");
    expect((await handle.wait()).stdout).toBe("first\nsecond\n");
    await s.close();
  });

  it("maps typed errors back on the client", async () => {
    const provider = createHttpRunnerProvider({ baseUrl: url, env: { RODER_RUNNER_HTTP_TOKEN: TOKEN } });
    const s = await provider.createSession({
      id: "d",
      provider_id: "http",
      config: null,
      default_manifest: { entries: [], mounts: [] },
    });
    expect(
      UnsupportedCapabilityError.isInstance(
        await s.exportArtifact({ path: "x", recursive: false }).catch((e) => e),
      ),
    ).toBe(true);
    const state = s.state();
    await s.close();
    expect(SessionNotFoundError.isInstance(await provider.resumeSession(state).catch((e) => e))).toBe(true);
    const noToken = createHttpRunnerProvider({
      baseUrl: url,
      env: { RODER_RUNNER_HTTP_TOKEN: "wrong-token-value" },
    });
    const e = await noToken
      .createSession({
        id: "d",
        provider_id: "http",
        config: null,
        default_manifest: { entries: [], mounts: [] },
      })
      .catch((x) => x);
    expect(ProviderApiError.isInstance(e) && e.statusCode).toBe(401);
    expect((e as Error).message).toContain("RODER_RUNNER_HTTP_TOKEN");
    expect((e as Error).message).not.toContain("wrong-token-value");
  });

  it("refuses a token in the destination config, naming the env variable", async () => {
    const provider = createHttpRunnerProvider({ baseUrl: url, env: { RODER_RUNNER_HTTP_TOKEN: TOKEN } });
    const e = await provider
      .validateDestination({
        id: "d",
        provider_id: "http",
        config: { token: "abc123456" },
        default_manifest: { entries: [], mounts: [] },
      })
      .catch((x) => x);
    expect((e as Error).message).toContain("RODER_RUNNER_HTTP_TOKEN");
  });

  it("documents every route it serves in openapi.json", () => {
    const spec = JSON.parse(
      readFileSync(resolve(dirname(fileURLToPath(import.meta.url)), "../openapi.json"), "utf8"),
    ) as { paths: Record<string, Record<string, unknown>> };
    const served = new Set(
      log.map(
        (e) =>
          `${e.method} ${e.path.replace(/ses_[0-9a-f]{32}/, "{session_id}").replace(/\/commands\/(?!stream)[^/]+$/, "/commands/{command_id}")}`,
      ),
    );
    expect(served.size).toBeGreaterThan(8);
    for (const route of served) {
      const [method, path] = route.split(" ") as [string, string];
      expect(spec.paths[path]?.[method.toLowerCase()], route).toBeDefined();
    }
  });

  it("closes every session on shutdown", async () => {
    const s2 = createRunnerServer({ provider: createLocalProvider(), token: TOKEN });
    const { url: u } = await s2.listen(0);
    const provider = createHttpRunnerProvider({ baseUrl: u, env: { RODER_RUNNER_HTTP_TOKEN: TOKEN } });
    const sess = await provider.createSession({
      id: "d",
      provider_id: "http",
      config: null,
      default_manifest: { entries: [], mounts: [] },
    });
    const root = (sess.state().metadata as { workspace_root: string }).workspace_root;
    expect(s2.sessionCount()).toBe(1);
    await s2.close();
    expect(s2.sessionCount()).toBe(0);
    const { existsSync } = await import("node:fs");
    expect(existsSync(root)).toBe(false);
  });
});

describe("client retries", () => {
  it("waits for Retry-After on 429 for idempotent calls and never retries a command", async () => {
    let reads = 0;
    let commands = 0;
    const times: number[] = [];
    const flaky = createServer((req, res) => {
      if (req.url?.startsWith("/sessions/s1/files")) {
        reads++;
        times.push(Date.now());
        if (reads === 1) {
          res.writeHead(429, { "retry-after": "1", "content-type": "application/json" });
          return res.end('{"error":{"code":"rate_limited","message":"slow down"}}');
        }
        if (reads === 2) {
          res.writeHead(503, { "content-type": "application/json" });
          return res.end('{"error":{"code":"unavailable","message":"try later"}}');
        }
        res.writeHead(200, { "content-type": "application/octet-stream" });
        return res.end(Buffer.from("ok"));
      }
      if (req.url === "/sessions/s1/commands") {
        commands++;
        res.writeHead(503, { "content-type": "application/json" });
        return res.end('{"error":{"code":"unavailable","message":"busy"}}');
      }
      if (req.url === "/sessions/s1") {
        res.writeHead(200, { "content-type": "application/json" });
        return res.end('{"session_id":"s1","workspace_root":null}');
      }
      res.writeHead(404).end();
    });
    await new Promise<void>((r) => flaky.listen(0, "127.0.0.1", r));
    const base = `http://127.0.0.1:${(flaky.address() as AddressInfo).port}`;
    try {
      const provider = createHttpRunnerProvider({
        baseUrl: base,
        env: { RODER_RUNNER_HTTP_TOKEN: "t0k3n-value" },
        retry: { baseDelayMs: 10 },
      });
      const s = await provider.resumeSession({
        provider_id: "http",
        session_id: "s1",
        destination_id: "d",
        snapshot: null,
        metadata: { base_url: base },
      });
      const r = await s.readFile({ path: "x" });
      expect(new TextDecoder().decode(r.contents)).toBe("ok");
      expect(reads).toBe(3);
      expect(times[1]! - times[0]!).toBeGreaterThanOrEqual(950);
      const e = await s.runCommand({ command_id: "c", program: "true" }).catch((x) => x);
      expect(ProviderApiError.isInstance(e) && e.statusCode).toBe(503);
      expect(commands).toBe(1);
    } finally {
      flaky.close();
    }
  });
});
