import { createServer, type IncomingHttpHeaders } from "node:http";
import type { AddressInfo } from "node:net";
import { ProviderApiError } from "@roder/runner-contract";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deleteHttpSnapshot } from "./snapshots.js";

// `snapshot rm` of an http snapshot: DELETE /snapshots/{id} on the configured server through the contract's HTTP
// client — retried when the server is briefly unavailable, a 404 is done already, a refusal is a typed error
// that never shows the token.
const TOKEN = "snapshot-delete-canary-5b1e";
const seen: Array<{ method: string; url: string; headers: IncomingHttpHeaders }> = [];
const answers: Array<[number, Record<string, string>?]> = [];
const server = createServer((req, res) => {
  seen.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers });
  const [status, headers] = answers.shift() ?? [204];
  req.resume();
  res.writeHead(status, { "content-type": "application/json", ...headers });
  res.end(status >= 400 ? JSON.stringify({ error: `no (${TOKEN})` }) : "");
});
let env: Record<string, string>;
beforeAll(async () => {
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  env = { RODER_RUNNER_HTTP_URL: url, RODER_RUNNER_HTTP_TOKEN: TOKEN };
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

const ref = (id: string) => ({ provider_id: "http", snapshot_id: id, metadata: {} });

describe("deleteHttpSnapshot", () => {
  it("sends DELETE with the bearer token, retries a 503 after its Retry-After, takes 404 as done", async () => {
    seen.length = 0;
    answers.push([503, { "retry-after": "0" }], [204]);
    await deleteHttpSnapshot(ref("snap/1 x"), env);
    expect(seen.map((s) => `${s.method} ${s.url}`)).toEqual([
      "DELETE /snapshots/snap%2F1%20x",
      "DELETE /snapshots/snap%2F1%20x",
    ]);
    expect(seen.every((s) => s.headers.authorization === `Bearer ${TOKEN}`)).toBe(true);
    answers.push([404]);
    await deleteHttpSnapshot(ref("gone"), env);
    expect(seen).toHaveLength(3);
  });

  it("a refusal is a typed ProviderApiError, not retried, without the token", async () => {
    seen.length = 0;
    answers.push([401]);
    const error = await deleteHttpSnapshot(ref("s"), env).catch((e: unknown) => e);
    expect(ProviderApiError.isInstance(error) && error.statusCode).toBe(401);
    expect(String(error)).toMatch(/^ProviderApiError: http: delete snapshot: no \(\*\*\*\) \(HTTP 401\)$/);
    expect(JSON.stringify(error)).not.toContain(TOKEN);
    expect(seen).toHaveLength(1);
  });

  it("without the server's URL and token it refuses before any request", async () => {
    seen.length = 0;
    await expect(
      deleteHttpSnapshot(ref("s"), { RODER_RUNNER_HTTP_URL: env.RODER_RUNNER_HTTP_URL! }),
    ).rejects.toThrow(/needs RODER_RUNNER_HTTP_URL and RODER_RUNNER_HTTP_TOKEN/);
    expect(seen).toHaveLength(0);
  });
});
