import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { join } from "node:path";
import { openFileStream, RunnerError } from "@roder/runner-contract";
import { createLocalProvider } from "@roder/runner-local";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHttpRunnerProvider } from "./http-provider.js";
import { createRunnerServer, type RunnerServer } from "./http-server.js";
import { parseRange } from "./http-server-files.js";

// Issue 15 item 3: file routes streamed both ways with bounded memory, ranged reads, and a PUT that fails
// (too large, cut short) leaves the old file.
const TOKEN = "files-token-5d2e8a71";
const MiB = 1024 * 1024;
const auth = { authorization: `Bearer ${TOKEN}` };

let server: RunnerServer;
let url = "";
let sid = "";
let root = "";
const fileUrl = (p: string) => `${url}/sessions/${sid}/files?path=${encodeURIComponent(p)}`;

beforeAll(async () => {
  server = createRunnerServer({
    provider: createLocalProvider(),
    token: TOKEN,
    maxFileBytes: 8 * MiB,
  });
  url = (await server.listen(0)).url;
  const created = (await (
    await fetch(`${url}/sessions`, {
      method: "POST",
      headers: auth,
      body: JSON.stringify({ destination_id: "d", config: { isolation: "none" } }),
    })
  ).json()) as { session_id: string; workspace_root: string };
  sid = created.session_id;
  root = created.workspace_root;
});
afterAll(async () => {
  await server.close();
});

const bytes = Buffer.from(Array.from({ length: 1000 }, (_, i) => (i * 7) & 0xff));

describe("GET /files with Range", () => {
  beforeAll(() => writeFileSync(join(root, "r.bin"), bytes));

  it("answers one range with 206 and Content-Range, a suffix, an open end; past the end 416", async () => {
    const cases: Array<[string, number, string | null, Buffer]> = [
      ["bytes=0-9", 206, "bytes 0-9/1000", bytes.subarray(0, 10)],
      ["bytes=990-", 206, "bytes 990-999/1000", bytes.subarray(990)],
      ["bytes=-5", 206, "bytes 995-999/1000", bytes.subarray(995)],
      ["bytes=995-5000", 206, "bytes 995-999/1000", bytes.subarray(995)],
      ["bytes=-5000", 206, "bytes 0-999/1000", bytes],
      ["bytes=1000-", 416, "bytes */1000", Buffer.alloc(0)],
      // Not one byte range: the whole file (RFC 9110 lets a server ignore such a header).
      ["bytes=0-1,5-6", 200, null, bytes],
      ["items=0-1", 200, null, bytes],
      ["bytes=9-2", 200, null, bytes],
    ];
    for (const [range, status, contentRange, body] of cases) {
      const res = await fetch(fileUrl("r.bin"), { headers: { ...auth, range } });
      expect(res.status, range).toBe(status);
      expect(res.headers.get("content-range"), range).toBe(contentRange);
      expect(res.headers.get("accept-ranges")).toBe("bytes");
      expect(Buffer.from(await res.arrayBuffer()).equals(body), range).toBe(true);
    }
  });

  it("parses only what it should", () => {
    expect(parseRange("bytes=0-")).toEqual({ kind: "from", start: 0, end: null });
    expect(parseRange(" bytes = 3 - 4 ")).toEqual({ kind: "from", start: 3, end: 4 });
    expect(parseRange("bytes=-0")).toEqual({ kind: "suffix", length: 0 });
    for (const bad of ["", "bytes=", "bytes=-", "bytes=a-b", "bytes=1-2-3", `bytes=${"9".repeat(30)}-`])
      expect(parseRange(bad), bad).toBeNull();
  });

  it("errors opening the file are the usual typed answers, not a cut stream", async () => {
    const missing = await fetch(fileUrl("nope.bin"), { headers: { ...auth, range: "bytes=0-1" } });
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as { error: { code: string } }).error.code).toBe("not_found");
    const outside = await fetch(fileUrl("../../etc/passwd"), { headers: { ...auth, range: "bytes=0-1" } });
    expect(outside.status).toBe(400);
  });
});

/** PUT whose body is `chunks`, then `end` (or the socket destroyed with `cut`). */
function put(path: string, chunks: Buffer[], opts: { cut?: boolean; length?: number } = {}) {
  return new Promise<number | "cut">((resolve, reject) => {
    const u = new URL(fileUrl(path));
    const req = request(
      {
        hostname: u.hostname,
        port: u.port,
        path: u.pathname + u.search,
        method: "PUT",
        agent: false,
        headers: {
          ...auth,
          "content-type": "application/octet-stream",
          ...(opts.length !== undefined ? { "content-length": String(opts.length) } : {}),
        },
      },
      (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode ?? 0));
      },
    );
    req.on("error", (e) => (opts.cut ? resolve("cut") : reject(e)));
    (async () => {
      for (const c of chunks) {
        if (!req.write(c)) await new Promise((r) => req.once("drain", r));
      }
      if (opts.cut) {
        await new Promise((r) => setTimeout(r, 200));
        req.destroy();
        setTimeout(() => resolve("cut"), 300);
      } else req.end();
    })();
  });
}

describe("PUT /files streamed", () => {
  it("writes a chunked body of any shape, byte for byte", async () => {
    const chunks = Array.from({ length: 40 }, (_, i) => Buffer.alloc(100_003, i));
    expect(await put("up/chunked.bin", chunks)).toBe(204);
    const want = createHash("sha256").update(Buffer.concat(chunks)).digest("hex");
    expect(
      createHash("sha256")
        .update(readFileSync(join(root, "up/chunked.bin")))
        .digest("hex"),
    ).toBe(want);
  });

  it("a body over maxFileBytes is a 413 and the old file stays, with no temporary file", async () => {
    writeFileSync(join(root, "up/keep.bin"), "old");
    // Declared too large: refused before a byte is read.
    expect(await put("up/keep.bin", [], { length: 9 * MiB })).toBe(413);
    // Chunked, found too large while streaming.
    const status = await put(
      "up/keep.bin",
      Array.from({ length: 9 }, () => Buffer.alloc(MiB + 1, 1)),
    );
    expect([413, "cut"]).toContain(status);
    expect(readFileSync(join(root, "up/keep.bin"), "utf8")).toBe("old");
    expect(readdirSync(join(root, "up")).sort()).toEqual(["chunked.bin", "keep.bin"]);
  });

  it("a client that goes away in the middle of the body leaves the old file, with no temporary file", async () => {
    writeFileSync(join(root, "up/cut.bin"), "before");
    expect(await put("up/cut.bin", [Buffer.alloc(MiB, 2)], { cut: true })).toBe("cut");
    // The server notices the cut and drops the temporary file.
    for (let i = 0; i < 50 && readdirSync(join(root, "up")).some((n) => n.startsWith(".roder")); i++)
      await new Promise((r) => setTimeout(r, 100));
    expect(readFileSync(join(root, "up/cut.bin"), "utf8")).toBe("before");
    expect(readdirSync(join(root, "up")).some((n) => n.startsWith(".roder"))).toBe(false);
    expect(existsSync(join(root, "up/cut.bin"))).toBe(true);
  });
});

describe("the HTTP provider's streamed files", () => {
  it("reads ranges and writes streams through the server, as streams", async () => {
    const provider = createHttpRunnerProvider({ baseUrl: url, token: TOKEN });
    const session = await provider.resumeSession({
      provider_id: "http",
      session_id: sid,
      destination_id: "d",
      snapshot: null,
      metadata: { base_url: url, workspace_root: root },
    });
    // 6 MiB through a stream, produced on the fly: the client never holds it whole.
    async function* produce() {
      for (let i = 0; i < 96; i++) yield Buffer.alloc(64 * 1024, i);
    }
    const w = await session.writeFileStream!({ path: "client/big.bin" }, produce());
    expect(w.bytes).toBe(6 * MiB);
    const r = await session.readFileStream!({ path: "client/big.bin", offset: 64 * 1024 * 95 + 10 });
    expect([r.size, r.offset, r.length]).toEqual([6 * MiB, 64 * 1024 * 95 + 10, 64 * 1024 - 10]);
    const parts: Buffer[] = [];
    for await (const c of r.body) parts.push(Buffer.from(c));
    expect(Buffer.concat(parts).equals(Buffer.alloc(64 * 1024 - 10, 95))).toBe(true);
    // A range past the end: the size, and nothing.
    const past = await openFileStream(session, { path: "client/big.bin", offset: 7 * MiB });
    expect([past.size, past.length]).toEqual([6 * MiB, 0]);
    // Over the server's limit: a typed error, not retried.
    async function* tooBig() {
      for (let i = 0; i < 10; i++) yield Buffer.alloc(MiB, 1);
    }
    const e = await session.writeFileStream!({ path: "client/huge.bin" }, tooBig()).catch((x) => x);
    expect(RunnerError.isInstance(e), String(e)).toBe(true);
    expect(String(e)).toMatch(/limit of 8388608 bytes|connection/);
    expect(existsSync(join(root, "client/huge.bin"))).toBe(false);
    // The source's own error reaches the caller as it was thrown.
    const boom = new Error("source failed");
    async function* broken() {
      yield Buffer.alloc(10);
      throw boom;
    }
    await expect(session.writeFileStream!({ path: "client/broken.bin" }, broken())).rejects.toBe(boom);
    expect(existsSync(join(root, "client/broken.bin"))).toBe(false);
  });
});
