import { createServer } from "node:net";
import { createLocalProvider } from "@roder/runner-local";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHttpRunnerProvider } from "./http-provider.js";
import { createRunnerServer, type RunnerServer } from "./http-server.js";

const TOKEN = "ports-token-77c0a1";
let server: RunnerServer;
let url = "";

beforeAll(async () => {
  server = createRunnerServer({ provider: createLocalProvider(), token: TOKEN });
  url = (await server.listen(0)).url;
});
afterAll(async () => {
  await server.close();
});

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

// An app a command starts in the session: echoes method, path, body and the authorization it received.
const APP = `
const http = require("http");
http.createServer((q, s) => {
  let body = "";
  q.on("data", (c) => (body += c));
  q.on("end", () => {
    s.setHeader("x-app", "yes");
    s.end(JSON.stringify({ method: q.method, url: q.url, body, auth: q.headers.authorization ?? null }));
  });
}).listen(Number(process.argv[1]), "127.0.0.1", () => console.log("listening"));
`;

describe("port previews through the server", () => {
  it("hand out a URL of this server that reaches an app started in the session", async () => {
    const provider = createHttpRunnerProvider({ baseUrl: url, env: { RODER_RUNNER_HTTP_TOKEN: TOKEN } });
    let previewUrl = "";
    const session = await provider.createSession({
      id: "d",
      provider_id: "http",
      config: null,
      default_manifest: { entries: [], mounts: [] },
    });
    const port = await freePort();
    const app = await session.startCommand!({
      command_id: "app",
      program: "node",
      args: ["-e", APP, String(port)],
    });
    const it = app.output[Symbol.asyncIterator]();
    expect(new TextDecoder().decode((await it.next()).value!.data)).toContain("listening");
    try {
      const preview = await session.exposePort({ port, label: null });
      expect(preview.url).toMatch(new RegExp(`^${url}/previews/pv_[0-9a-f]{32}/$`));
      // The same port keeps its URL.
      expect((await session.exposePort({ port, label: "again" })).url).toBe(preview.url);
      // A browser opens the preview URL as is (no bearer credential).
      expect(((await (await fetch(`${preview.url}x`)).json()) as { url: string }).url).toBe("/x");
      const res = await fetch(`${preview.url}api/items?q=a%20b`, {
        method: "POST",
        headers: { authorization: `Bearer ${TOKEN}`, "content-type": "text/plain" },
        body: "payload",
      });
      expect(res.status).toBe(200);
      expect(res.headers.get("x-app")).toBe("yes");
      // The path and query as sent, the body streamed through, and the server's credential kept from the app.
      expect(await res.json()).toEqual({
        method: "POST",
        url: "/api/items?q=a%20b",
        body: "payload",
        auth: null,
      });
      // The authenticated route reaches it too, and is closed without the bearer credential.
      const route = `${url}/sessions/${session.state().session_id}/ports/${port}/`;
      expect((await fetch(route, { headers: { authorization: `Bearer ${TOKEN}` } })).status).toBe(200);
      expect((await fetch(route)).status).toBe(401);
      previewUrl = preview.url!;
    } finally {
      await session.cancelCommand("app");
    }
    // Nothing listening any more: a typed 502, not a hang.
    const gone = await fetch(`${url}/sessions/${session.state().session_id}/ports/${port}/`, {
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    expect(gone.status).toBe(502);
    expect(((await gone.json()) as { error: { code: string } }).error.code).toBe("port_unreachable");
    await session.close();
    // A preview dies with its session.
    expect((await fetch(previewUrl)).status).toBe(404);
  });

  it("use the configured public URL when the server sits behind a proxy", async () => {
    const behind = createRunnerServer({
      provider: createLocalProvider(),
      token: TOKEN,
      publicUrl: "https://runners.example.com/v1/",
      authenticatedPreviews: true,
    });
    const u = (await behind.listen(0)).url;
    try {
      const auth = { authorization: `Bearer ${TOKEN}` };
      const created = (await (
        await fetch(`${u}/sessions`, { method: "POST", headers: auth, body: '{"destination_id":"d"}' })
      ).json()) as { session_id: string };
      const res = await fetch(`${u}/sessions/${created.session_id}/ports`, {
        method: "POST",
        headers: auth,
        body: '{"port":8080,"label":null}',
      });
      expect(await res.json()).toEqual({
        port: 8080,
        url: `https://runners.example.com/v1/sessions/${created.session_id}/ports/8080/`,
      });
      const bad = await fetch(`${u}/sessions/${created.session_id}/ports/0/`, { headers: auth });
      expect(bad.status).toBe(400);
    } finally {
      await behind.close();
    }
  });
});
