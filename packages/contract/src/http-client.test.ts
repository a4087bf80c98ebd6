import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { z } from "zod";
import { CancelledError } from "./errors/cancelled-error.js";
import { ProviderApiError } from "./errors/provider-api-error.js";
import { createHttpClient, type HttpClientOptions, parseRetryAfter } from "./http-client.js";
import { loadToken, tokenRoute } from "./load-token.js";

const TOKEN = "canary-tok-5d1e9a7c";
/** Backoff of an hour: a test only finishes when the client waits what Retry-After says, not its own backoff. */
const SLOW = { maxRetries: 3, baseDelayMs: 3_600_000, maxDelayMs: 3_600_000 };

interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage["headers"];
  body: Buffer;
}
type Handler = (req: Seen, res: ServerResponse) => void;

let server: Server;
let base: string;
const seen: Seen[] = [];
/** Answers for the next requests, in order; then 200 `{"ok":true}`. */
let script: Handler[] = [];

beforeAll(async () => {
  server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const s: Seen = { method: req.method!, url: req.url!, headers: req.headers, body: Buffer.concat(chunks) };
    seen.push(s);
    const next = script.shift();
    if (next) return next(s, res);
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ ok: true }));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});
beforeEach(() => {
  seen.length = 0;
  script = [];
});

const status =
  (code: number, headers: Record<string, string> = {}, body = "{}"): Handler =>
  (_req, res) =>
    res.writeHead(code, { "content-type": "application/json", ...headers }).end(body);

const client = (o: Partial<HttpClientOptions> = {}) =>
  createHttpClient({ providerId: "demo", baseUrl: `${base}/`, auth: { token: TOKEN }, retry: SLOW, ...o });

async function caught(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  throw new Error("expected a rejection");
}

describe("createHttpClient against a real server", () => {
  it("sends the bearer token and JSON, and reads JSON back", async () => {
    const out = await client().json<{ ok: boolean }>({
      method: "POST",
      path: "/things?x=1",
      operation: "make thing",
      idempotent: false,
      json: { a: 1 },
    });
    expect(out).toEqual({ ok: true });
    expect(seen[0]!.url).toBe("/things?x=1");
    expect(seen[0]!.headers.authorization).toBe(`Bearer ${TOKEN}`);
    expect(seen[0]!.headers["content-type"]).toBe("application/json");
    expect(JSON.parse(seen[0]!.body.toString())).toEqual({ a: 1 });
  });

  it("retries 429 and 503 of an idempotent call, waiting what Retry-After says (seconds or an HTTP date)", async () => {
    const past = new Date(Date.now() - 10_000).toUTCString();
    script = [status(429, { "retry-after": "0" }), status(503, { "retry-after": past })];
    const retries: Array<[number, number | undefined]> = [];
    const res = await client({
      onRetry: (_op, n, e) => retries.push([n, ProviderApiError.isInstance(e) ? e.statusCode : undefined]),
    }).request({ method: "GET", path: "/things", operation: "list things", idempotent: true });
    expect(res.status).toBe(200);
    expect(seen.map((s) => s.method)).toEqual(["GET", "GET", "GET"]);
    expect(retries).toEqual([
      [1, 429],
      [2, 503],
    ]);
  });

  it("gives up after the policy's retries with the last typed error", async () => {
    script = Array.from({ length: 5 }, () => status(503, { "retry-after": "0" }, '{"error":"busy"}'));
    const e = await caught(
      client({ retry: { ...SLOW, maxRetries: 2 } }).request({
        method: "GET",
        path: "/x",
        operation: "get x",
        idempotent: true,
      }),
    );
    expect(ProviderApiError.isInstance(e) && e.statusCode).toBe(503);
    expect(String(e)).toMatch(/get x: busy \(HTTP 503\)/);
    expect((e as ProviderApiError).retryAfterMs).toBe(0);
    expect(seen).toHaveLength(3);
  });

  it("never retries a call that is not idempotent (503, or a reset connection)", async () => {
    script = [status(503, { "retry-after": "0" })];
    const e = await caught(
      client().request({ method: "POST", path: "/x", operation: "create x", idempotent: false, json: {} }),
    );
    expect(ProviderApiError.isInstance(e) && e.statusCode).toBe(503);
    expect(seen).toHaveLength(1);
    script = [(_req, res) => res.socket?.destroy()];
    const reset = await caught(
      client().request({ method: "POST", path: "/x", operation: "create x", idempotent: false, json: {} }),
    );
    expect(ProviderApiError.isInstance(reset)).toBe(true);
    // It may have taken effect: never advertised as safe to repeat.
    expect((reset as ProviderApiError).isRetryable).toBe(false);
    expect(seen).toHaveLength(2);
  });

  it("retries a non-idempotent call when its shouldRetry says the request was not processed (429)", async () => {
    script = [status(429, { "retry-after": "0" }), status(500)];
    const e = await caught(
      client().request({
        method: "POST",
        path: "/x",
        operation: "create x",
        idempotent: false,
        shouldRetry: (err) => ProviderApiError.isInstance(err) && err.statusCode === 429,
      }),
    );
    expect(ProviderApiError.isInstance(e) && e.statusCode).toBe(500);
    expect(seen).toHaveLength(2);
  });

  it("an abort during a retry sleep rejects at once with CancelledError", async () => {
    // An hour's Retry-After: only a cancellable sleep lets this test end.
    script = [status(429, { "retry-after": "3600" })];
    const ac = new AbortController();
    let sleeping!: () => void;
    const retrying = new Promise<void>((r) => {
      sleeping = r;
    });
    const p = client({ onRetry: () => sleeping() }).request({
      method: "GET",
      path: "/slow",
      operation: "get slow",
      idempotent: true,
      signal: ac.signal,
    });
    await retrying;
    ac.abort();
    const e = await caught(p);
    expect(CancelledError.isInstance(e), String(e)).toBe(true);
    expect(String(e)).toMatch(/get slow was cancelled/);
    expect(seen).toHaveLength(1);
  });

  it("an abort signal already fired sends nothing", async () => {
    const e = await caught(
      client().request({
        method: "GET",
        path: "/x",
        operation: "get x",
        idempotent: true,
        signal: AbortSignal.abort(),
      }),
    );
    expect(CancelledError.isInstance(e)).toBe(true);
    expect(seen).toHaveLength(0);
  });

  it("errors carry no token: not from the body echoing it, not in the URL's query, not on a refused connection", async () => {
    script = [(req, res) => res.writeHead(401).end(`bad credential: ${req.headers.authorization}`)];
    const e = await caught(
      client().request({ method: "GET", path: `/x?sig=${TOKEN}`, operation: "get x", idempotent: true }),
    );
    expect(ProviderApiError.isInstance(e) && e.statusCode).toBe(401);
    expect((e as ProviderApiError).isRetryable).toBe(false);
    expect((e as ProviderApiError).url).toBe(`${base}/x`);
    expect(String(e)).toMatch(/bad credential: Bearer \*\*\*/);
    const dump = (x: unknown) => JSON.stringify({ s: String(x), j: x, u: (x as ProviderApiError).url });
    expect(dump(e)).not.toContain(TOKEN);
    const refused = await caught(
      createHttpClient({
        providerId: "demo",
        baseUrl: "http://127.0.0.1:1",
        auth: { token: TOKEN },
        retry: { maxRetries: 0, baseDelayMs: 1, maxDelayMs: 1 },
      }).request({ method: "GET", path: `/x?sig=${TOKEN}`, operation: "get x", idempotent: true }),
    );
    expect(ProviderApiError.isInstance(refused)).toBe(true);
    expect(String(refused)).toMatch(/get x: connection failed/);
    expect(dump(refused)).not.toContain(TOKEN);
  });

  it("a custom header carries the token as is; a function token is asked at every attempt", async () => {
    let n = 0;
    script = [status(503, { "retry-after": "0" })];
    await client({ auth: { header: "X-API-KEY", token: async () => `key-${++n}` } }).request({
      method: "GET",
      path: "/x",
      operation: "get x",
      idempotent: true,
    });
    expect(seen.map((s) => s.headers["x-api-key"])).toEqual(["key-1", "key-2"]);
    expect(seen[0]!.headers.authorization).toBeUndefined();
  });

  it("streams a request body of chunks, and hands out the answer's body as a stream", async () => {
    script = [
      (req, res) => {
        res.writeHead(200, { "content-type": "application/octet-stream" });
        res.write(req.body.subarray(0, 3));
        res.end(req.body.subarray(3));
      },
    ];
    async function* chunks() {
      yield new TextEncoder().encode("hello ");
      yield new TextEncoder().encode("world");
    }
    const res = await client().request({
      method: "PUT",
      path: "/file",
      operation: "write file",
      idempotent: true,
      body: chunks(),
    });
    expect(seen[0]!.headers["transfer-encoding"]).toBe("chunked");
    expect(seen[0]!.headers["content-type"]).toBe("application/octet-stream");
    expect(res.body).not.toBeNull();
    expect(await res.text()).toBe("hello world");
  });

  it("a streamed upload is never resent, even when idempotent", async () => {
    script = [status(503, { "retry-after": "0" })];
    async function* one() {
      yield new Uint8Array([1, 2, 3]);
    }
    const e = await caught(
      client().request({ method: "PUT", path: "/f", operation: "write", idempotent: true, body: one() }),
    );
    expect(ProviderApiError.isInstance(e) && e.statusCode).toBe(503);
    expect(seen).toHaveLength(1);
  });

  it("a buffered answer cut in the middle is a retryable error, and retried", async () => {
    script = [
      (_req, res) => {
        res.writeHead(200, { "content-length": "100" });
        res.write("partial");
        setTimeout(() => res.socket?.destroy(), 20);
      },
    ];
    const res = await client({ retry: { maxRetries: 1, baseDelayMs: 1, maxDelayMs: 1 } }).request({
      method: "GET",
      path: "/big",
      operation: "read big",
      idempotent: true,
      buffer: true,
    });
    expect(await res.json()).toEqual({ ok: true });
    expect(seen).toHaveLength(2);
  });

  it("json() checks the answer with a schema: a bad one is a typed error naming the field", async () => {
    script = [status(200, {}, JSON.stringify({ id: 7 }))];
    const e = await caught(
      client().json(
        { method: "GET", path: "/x", operation: "get x", idempotent: true },
        z.object({ id: z.string() }),
      ),
    );
    expect(ProviderApiError.isInstance(e)).toBe(true);
    expect(String(e)).toMatch(/get x: unexpected answer \(id:/);
  });

  it("an error mapper turns an answer into the provider's own error", async () => {
    script = [status(404, {}, JSON.stringify({ error: { code: "gone", message: "no such thing" } }))];
    const e = await caught(
      client({
        errorFor: (a) =>
          new Error(
            `${a.operation} ${a.status} ${a.message} ${(a.body as { error: { code: string } }).error.code}`,
          ),
      }).request({ method: "GET", path: "/x", operation: "get x", idempotent: true }),
    );
    expect(String(e)).toBe("Error: get x 404 no such thing gone");
  });
});

describe("parseRetryAfter", () => {
  it("reads delta-seconds and HTTP dates; refuses the rest", () => {
    const now = Date.parse("2026-01-01T00:00:00Z");
    expect(parseRetryAfter("3", now)).toBe(3000);
    expect(parseRetryAfter(" 1.5 ", now)).toBe(1500);
    expect(parseRetryAfter("Thu, 01 Jan 2026 00:00:10 GMT", now)).toBe(10_000);
    expect(parseRetryAfter("Wed, 31 Dec 2025 23:59:00 GMT", now)).toBe(0);
    expect(parseRetryAfter("soon", now)).toBeUndefined();
    expect(parseRetryAfter(null, now)).toBeUndefined();
  });
});

describe("loadToken", () => {
  it("takes the option over the environment, else the variable", () => {
    const env = { FLY_API_TOKEN: "from-env" };
    expect(loadToken({ option: "opt", env, envName: "FLY_API_TOKEN", providerId: "fly" })).toBe("opt");
    expect(loadToken({ env, envName: "FLY_API_TOKEN", providerId: "fly" })).toBe("from-env");
    expect(tokenRoute({ option: "opt", envName: "E2B_API_KEY", optionName: "apiKey" })).toBe(
      "the apiKey option",
    );
    expect(tokenRoute({ envName: "E2B_API_KEY" })).toBe("E2B_API_KEY");
  });

  it("missing, names both routes in a typed error", () => {
    let e: unknown;
    try {
      loadToken({
        env: { OTHER: TOKEN },
        envName: "E2B_API_KEY",
        providerId: "e2b",
        optionName: "apiKey",
        description: "the E2B API key",
      });
    } catch (error) {
      e = error;
    }
    expect(ProviderApiError.isInstance(e) && e.isRetryable).toBe(false);
    expect(String(e)).toBe(
      "ProviderApiError: e2b: the E2B API key is missing: pass it with the 'apiKey' option or set E2B_API_KEY",
    );
  });
});
