import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startHttpsInterceptProxy } from "../https-intercept/intercept-proxy.js";
import { createTestCa } from "../https-intercept/test-ca.js";
import { type BoxStandIn, boxDigest, startBoxStandIn } from "./box-standin.js";

interface Answer {
  status: number;
  headers: string;
  body: string;
  exit: number;
  stderr: string;
}

let seq = 0;
/** One HTTPS request with curl through the stand-in's proxy, trusting only its CA. */
function curl(box: BoxStandIn, args: string[], opts: { ca?: string; stdin?: Buffer } = {}): Promise<Answer> {
  const headerFile = join(tmpdir(), `roder-box-curl-${process.pid}-${seq++}.txt`);
  return new Promise((resolve) => {
    const child = execFile(
      "curl",
      [
        "-sS",
        "--proxy",
        box.proxyUrl,
        "--cacert",
        opts.ca ?? box.caCertFile,
        "-D",
        headerFile,
        "-w",
        "\n%{http_code}",
        ...args,
      ],
      { env: { PATH: process.env.PATH ?? "/usr/bin:/bin" }, maxBuffer: 64 << 20 },
      (e, stdout, stderr) => {
        const i = stdout.lastIndexOf("\n");
        let headers = "";
        try {
          headers = readFileSync(headerFile, "utf8");
          rmSync(headerFile);
        } catch {}
        resolve({
          status: Number(stdout.slice(i + 1)),
          body: stdout.slice(0, i),
          headers,
          exit: typeof e?.code === "number" ? e.code : 0,
          stderr,
        });
      },
    );
    if (opts.stdin) child.stdin!.end(opts.stdin);
    else child.stdin!.end();
  });
}
const auth = (t: string) => ["-H", `authorization: Bearer ${t}`];

describe("Box stand-in (through its intercepting proxy)", () => {
  let box: BoxStandIn;
  beforeAll(async () => {
    box = await startBoxStandIn({ rateLimit: { perMinute: 6 }, uploadPartSize: 8 * 1024 * 1024 });
  });
  afterAll(() => box?.stop());

  it("a client that does not trust the run's CA is refused; other hosts are refused by the proxy", async () => {
    const other = createTestCa();
    try {
      const r = await curl(box, ["https://api.box.com/2.0/users/me"], { ca: other.certFile });
      expect(r.exit).toBe(60); // curl: peer certificate cannot be authenticated
    } finally {
      other.dispose();
    }
    const e = await curl(box, ["https://example.com/"]);
    expect(e.exit).not.toBe(0);
    expect(e.stderr).toMatch(/CONNECT tunnel failed, response 403/);
    expect(box.proxy.connects.at(-1)).toEqual({ host: "example.com", port: 443, allowed: false });
  });

  it("unauthorised and expired tokens: 401 with an empty body and the reason in WWW-Authenticate", async () => {
    const bad = await curl(box, [...auth("nope"), "https://api.box.com/2.0/users/me"]);
    expect(bad.status).toBe(401);
    expect(bad.body).toBe("");
    expect(bad.headers).toMatch(/www-authenticate: bearer realm="service", error="invalid_token"/i);
    const expired = JSON.parse(box.tokenJson({ expired: true })) as Record<string, string>;
    const r = await curl(box, [...auth(expired.access_token!), "https://api.box.com/2.0/users/me"]);
    expect(r.status).toBe(401);
    expect(r.headers).toContain('error="expired_token"');
    // Refresh: the refresh token works once (Box rotates them), the new access token works.
    const form = (rt: string) => [
      "--data",
      `grant_type=refresh_token&refresh_token=${rt}&client_id=${box.clientId}&client_secret=${box.clientSecret}`,
      box.tokenUrl,
    ];
    const ok = await curl(box, form(expired.refresh_token!));
    expect(ok.status).toBe(200);
    const t = JSON.parse(ok.body) as {
      access_token: string;
      refresh_token: string;
      token_type: string;
      expires_in: number;
    };
    expect(t).toMatchObject({ token_type: "bearer", expires_in: 3600 });
    expect(t.refresh_token).not.toBe(expired.refresh_token);
    const again = await curl(box, form(expired.refresh_token!));
    expect(again.status).toBe(400);
    expect(JSON.parse(again.body)).toEqual({
      error: "invalid_grant",
      error_description: "Invalid refresh token",
    });
    const me = await curl(box, [...auth(t.access_token), "https://api.box.com/2.0/users/me"]);
    expect(me.status).toBe(200);
    expect(JSON.parse(me.body)).toMatchObject({ type: "user", space_amount: expect.any(Number) });
  });

  it("per-user rate limit: 429 rate_limit_exceeded with Retry-After and Box's error body", async () => {
    const token = JSON.parse(box.tokenJson()).access_token as string;
    const statuses: number[] = [];
    let last: Answer | undefined;
    for (let i = 0; i < 7; i++) {
      last = await curl(box, [...auth(token), "https://api.box.com/2.0/folders/0/items"]);
      statuses.push(last.status);
    }
    expect(statuses).toEqual([200, 200, 200, 200, 200, 200, 429]);
    expect(last!.headers).toMatch(/retry-after: \d+/i);
    expect(Number(/retry-after: (\d+)/i.exec(last!.headers)![1])).toBeGreaterThan(0);
    expect(JSON.parse(last!.body)).toMatchObject({
      type: "error",
      status: 429,
      code: "rate_limit_exceeded",
      message: "Request rate limit exceeded, please try again later",
      help_url: expect.any(String),
      request_id: expect.any(String),
    });
  });

  it("folder items page with markers and offsets; conflicts are 409 item_name_in_use with the conflicting item", async () => {
    const api = await startBoxStandIn({ rateLimit: false });
    try {
      const folder = api.mkdir("paged");
      for (let i = 0; i < 5; i++) api.putFile(`paged/f${i}.txt`, `n${i}`);
      api.mkdir("paged/sub");
      const names: string[] = [];
      let marker: string | null = "";
      let pages = 0;
      while (marker !== null) {
        const r = await curl(api, [
          ...auth(api.accessToken),
          `https://api.box.com/2.0/folders/${folder}/items?fields=name,size&limit=2&usemarker=true${marker ? `&marker=${marker}` : ""}`,
        ]);
        const page = JSON.parse(r.body) as {
          entries: Array<{ type: string; name: string }>;
          next_marker: string | null;
        };
        names.push(...page.entries.map((e) => `${e.type}:${e.name}`));
        marker = page.next_marker;
        pages += 1;
      }
      expect(pages).toBe(3);
      expect(names).toEqual([
        "folder:sub",
        "file:f0.txt",
        "file:f1.txt",
        "file:f2.txt",
        "file:f3.txt",
        "file:f4.txt",
      ]);
      const off = JSON.parse(
        (
          await curl(api, [
            ...auth(api.accessToken),
            `https://api.box.com/2.0/folders/${folder}/items?offset=4&limit=10`,
          ])
        ).body,
      );
      expect(off).toMatchObject({ total_count: 6, offset: 4, limit: 10 });
      expect(off.entries.map((e: { name: string }) => e.name)).toEqual(["f3.txt", "f4.txt"]);
      const dup = await curl(api, [
        ...auth(api.accessToken),
        "-X",
        "OPTIONS",
        "--data",
        JSON.stringify({ name: "F0.TXT", parent: { id: folder }, size: 1 }),
        "https://api.box.com/2.0/files/content",
      ]);
      expect(dup.status).toBe(409);
      expect(JSON.parse(dup.body)).toMatchObject({
        type: "error",
        code: "item_name_in_use",
        context_info: { conflicts: { type: "file", name: "f0.txt" } },
      });
      const missing = await curl(api, [
        ...auth(api.accessToken),
        "https://api.box.com/2.0/folders/99999/items",
      ]);
      expect(missing.status).toBe(404);
      expect(JSON.parse(missing.body)).toMatchObject({ type: "error", status: 404, code: "not_found" });
      const nonEmpty = await curl(api, [
        ...auth(api.accessToken),
        "-X",
        "DELETE",
        `https://api.box.com/2.0/folders/${folder}?recursive=false`,
      ]);
      expect(nonEmpty.status).toBe(400);
      expect(JSON.parse(nonEmpty.body).code).toBe("folder_not_empty");
      // A download is a 302 to dl.boxcloud.com, which honours Range.
      const id = api.store.fileAt("paged/f3.txt")!.id;
      const dl = await curl(api, [...auth(api.accessToken), `https://api.box.com/2.0/files/${id}/content`]);
      expect(dl.status).toBe(302);
      const loc = /location: (\S+)/i.exec(dl.headers)![1]!;
      expect(loc).toMatch(/^https:\/\/dl\.boxcloud\.com\//);
      const part = await curl(api, ["-H", "range: bytes=1-", loc]);
      expect([part.status, part.body]).toEqual([206, "3"]);
    } finally {
      await api.stop();
    }
  });

  it("chunked upload sessions: 20 MB minimum, part alignment and Digest checked, commit with the whole SHA-1", async () => {
    const api = await startBoxStandIn({ rateLimit: false, uploadPartSize: 8 * 1024 * 1024 });
    try {
      const folder = api.mkdir("big");
      const t = auth(api.accessToken);
      const small = await curl(api, [
        ...t,
        "--data",
        JSON.stringify({ folder_id: folder, file_size: 1000, file_name: "x" }),
        "https://upload.box.com/api/2.0/files/upload_sessions",
      ]);
      expect([small.status, JSON.parse(small.body).code]).toEqual([400, "file_size_too_small"]);
      const size = 20_000_001;
      const data = Buffer.alloc(size, 7);
      data.write("roder", 12345);
      const c = await curl(api, [
        ...t,
        "--data",
        JSON.stringify({ folder_id: folder, file_size: size, file_name: "blob.bin" }),
        "https://upload.box.com/api/2.0/files/upload_sessions",
      ]);
      expect(c.status).toBe(201);
      const s = JSON.parse(c.body) as { id: string; part_size: number; total_parts: number };
      expect(s).toMatchObject({ part_size: 8 * 1024 * 1024, total_parts: 3 });
      expect(api.pendingUploadSessions()).toEqual([s.id]);
      const put = (a: number, b: number, digest?: string) =>
        curl(
          api,
          [
            ...t,
            "-X",
            "PUT",
            "-H",
            "content-type: application/octet-stream",
            "-H",
            `content-range: bytes ${a}-${b}/${size}`,
            "-H",
            `digest: ${digest ?? boxDigest(data.subarray(a, b + 1))}`,
            "--data-binary",
            "@-",
            `https://upload.box.com/api/2.0/files/upload_sessions/${s.id}`,
          ],
          { stdin: data.subarray(a, b + 1) },
        );
      const misaligned = await put(100, 100 + s.part_size - 1);
      expect([misaligned.status, JSON.parse(misaligned.body).code]).toEqual([416, "range_not_satisfiable"]);
      const wrongDigest = await put(0, s.part_size - 1, boxDigest(Buffer.from("other")));
      expect([wrongDigest.status, JSON.parse(wrongDigest.body).code]).toEqual([400, "bad_digest"]);
      const parts = [];
      for (let a = 0; a < size; a += s.part_size) {
        const r = await put(a, Math.min(a + s.part_size, size) - 1);
        expect(r.status).toBe(200);
        parts.push(JSON.parse(r.body).part);
      }
      expect(parts[2]).toMatchObject({ offset: 2 * s.part_size, size: size - 2 * s.part_size });
      const commit = (body: unknown, digest: string) =>
        curl(api, [
          ...t,
          "-H",
          `digest: ${digest}`,
          "--data",
          JSON.stringify(body),
          `https://upload.box.com/api/2.0/files/upload_sessions/${s.id}/commit`,
        ]);
      const short = await commit({ parts: parts.slice(0, 2) }, boxDigest(data));
      expect([short.status, JSON.parse(short.body).code]).toEqual([400, "parts_mismatch"]);
      const done = await commit(
        { parts, attributes: { content_modified_at: "2024-05-01T10:00:00Z" } },
        boxDigest(data),
      );
      expect(done.status).toBe(201);
      const entry = JSON.parse(done.body).entries[0];
      expect(entry).toMatchObject({
        type: "file",
        name: "blob.bin",
        size,
        sha1: createHash("sha1").update(data).digest("hex"),
        content_modified_at: "2024-05-01T10:00:00Z",
      });
      expect(api.readFile("big/blob.bin")!.equals(data)).toBe(true);
      expect(api.pendingUploadSessions()).toEqual([]);
    } finally {
      await api.stop();
    }
  }, 60_000);
});

describe("https intercept proxy", () => {
  it("serves only the hosts it was given, with certificates from the run's CA", async () => {
    const proxy = await startHttpsInterceptProxy({
      hosts: {
        "api.example.test": (req, res) => res.end(`seen ${req.method} ${req.headers.host}${req.url}`),
      },
    });
    const run = (url: string) =>
      new Promise<{ code: number; out: string; err: string }>((resolve) =>
        execFile("curl", ["-sS", "--proxy", proxy.url, "--cacert", proxy.ca.certFile, url], (e, out, err) =>
          resolve({ code: typeof e?.code === "number" ? e.code : 0, out, err }),
        ),
      );
    try {
      expect(await run("https://api.example.test/v1/x?y=1")).toMatchObject({
        code: 0,
        out: "seen GET api.example.test/v1/x?y=1",
      });
      const refused = await run("https://elsewhere.example.test/");
      expect(refused.code).not.toBe(0);
      expect(refused.err).toMatch(/403/);
      // A plain-HTTP proxy request is refused too: the proxy forwards nothing.
      const plain = await run("http://api.example.test/");
      expect(plain.out).toMatch(/only answers CONNECT/);
      expect(proxy.connects.map((c) => [c.host, c.allowed])).toEqual([
        ["api.example.test", true],
        ["elsewhere.example.test", false],
      ]);
    } finally {
      await proxy.stop();
    }
  });
});
