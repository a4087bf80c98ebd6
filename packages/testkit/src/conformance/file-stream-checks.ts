import { createHash, randomUUID } from "node:crypto";
import {
  openFileStream,
  type RemoteRunnerSession,
  RunnerError,
  writeFileFromStream,
} from "@roder/runner-contract";
import { expect } from "vitest";
import { type Check, thrown } from "./conformance-suite.js";

/** Deterministic pseudo-random bytes (every byte value occurs). */
function pattern(size: number, seed: number): Uint8Array {
  const out = new Uint8Array(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** `bytes` in chunks of uneven sizes (1 byte, 64 KiB + 3, …), as a network would deliver them. */
async function* chunked(bytes: Uint8Array, fail?: Error): AsyncGenerator<Uint8Array> {
  const sizes = [1, 65_539, 7, 1_048_576, 4_099];
  for (let at = 0, i = 0; at < bytes.length; i++) {
    const n = Math.min(sizes[i % sizes.length]!, bytes.length - at);
    yield bytes.subarray(at, at + n);
    at += n;
    if (fail && at >= bytes.length / 2) throw fail;
  }
}

async function collect(body: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of body) parts.push(Buffer.from(c));
  return Buffer.concat(parts);
}

/** A command's output once it reads `want` (polled for up to 10 s), or the last output. */
async function settled(run: () => Promise<{ stdout: string }>, want: string): Promise<string> {
  let out = "";
  for (let i = 0; i < 50; i++) {
    out = (await run()).stdout;
    if (out === want) return out;
    await new Promise((r) => setTimeout(r, 200));
  }
  return out;
}

const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

/**
 * Streamed file reads and writes, with ranges (`readFileStream` / `writeFileStream`, through the contract's
 * `openFileStream` / `writeFileFromStream`, which fall back on `readFile` / `writeFile`). With `native`, the
 * session must have both methods itself (what bounded memory for files of any size rests on).
 */
export function fileStreamChecks(opts: {
  check: Check;
  session: () => RemoteRunnerSession;
  sh: (script: string) => Promise<{ stdout: string; exit_code: number | null }>;
  native: boolean;
  sandboxScope: boolean;
}): void {
  const { check } = opts;

  if (opts.native) {
    check("has streamed file reads and writes", async () => {
      const s = opts.session();
      expect(typeof s.readFileStream).toBe("function");
      expect(typeof s.writeFileStream).toBe("function");
    });
  }

  check(
    "streams a file in and out byte for byte, and reads byte ranges",
    async () => {
      const s = opts.session();
      const bytes = pattern(3 * 1024 * 1024 + 17, 7);
      const w = await writeFileFromStream(s, { path: "streams/a.bin" }, chunked(bytes));
      expect(w.bytes).toBe(bytes.length);
      // What the plain API and the runner see.
      expect(sha((await s.readFile({ path: "streams/a.bin" })).contents)).toBe(sha(bytes));
      const seen = await opts.sh("wc -c < streams/a.bin");
      expect(Number(seen.stdout.trim())).toBe(bytes.length);
      const whole = await openFileStream(s, { path: "streams/a.bin" });
      expect([whole.size, whole.offset, whole.length]).toEqual([bytes.length, 0, bytes.length]);
      expect(sha(await collect(whole.body))).toBe(sha(bytes));
      const size = bytes.length;
      for (const [offset, length] of [
        [0, 1],
        [1_000_003, 1_048_576],
        [size - 5, undefined],
        [size - 5, 100],
        [size, undefined],
        [size + 10, 4],
        [12, 0],
      ] as Array<[number, number | undefined]>) {
        const r = await openFileStream(s, {
          path: "streams/a.bin",
          offset,
          ...(length === undefined ? {} : { length }),
        });
        const got = await collect(r.body);
        const want = bytes.subarray(Math.min(offset, size), Math.min(size, offset + (length ?? size)));
        expect(r.size, `size at ${offset}+${length}`).toBe(size);
        expect(r.length, `length at ${offset}+${length}`).toBe(want.length);
        expect(got.equals(Buffer.from(want)), `bytes at ${offset}+${length}`).toBe(true);
      }
      // Leaving a read early ends it; the file can be read again at once.
      const early = await openFileStream(s, { path: "streams/a.bin" });
      for await (const _ of early.body) break;
      expect(
        (await collect((await openFileStream(s, { path: "streams/a.bin", length: 3 })).body)).length,
      ).toBe(3);
    },
    120_000,
  );

  check("a streamed write that fails leaves the old file whole and no temporary file", async () => {
    const s = opts.session();
    await s.writeFile({ path: "streams/keep.txt", contents: "the old contents" });
    const before = (await opts.sh("ls -A streams")).stdout;
    const boom = new Error("the source broke");
    const e = await thrown(() =>
      writeFileFromStream(s, { path: "streams/keep.txt" }, chunked(pattern(2 * 1024 * 1024, 3), boom)),
    );
    expect(e).toBeInstanceOf(Error);
    expect(new TextDecoder().decode((await s.readFile({ path: "streams/keep.txt" })).contents)).toBe(
      "the old contents",
    );
    // Over a network the client learns of the failure before the runner has removed its temporary file: it
    // must be gone soon after.
    expect(await settled(() => opts.sh("ls -A streams"), before)).toBe(before);
  });

  check("a streamed read's opening errors are typed and come from the call", async () => {
    const s = opts.session();
    const missing = await thrown(() => openFileStream(s, { path: `streams/none-${randomUUID()}` }));
    expect(RunnerError.isInstance(missing) && missing.code, String(missing)).toBe("not_found");
    await s.writeFile({ path: "streams/dir/x", contents: "x" });
    const dir = await thrown(() => openFileStream(s, { path: "streams/dir" }));
    expect(RunnerError.isInstance(dir) && dir.code, String(dir)).toBe("is_a_directory");
    for (const bad of [{ offset: -1 }, { length: 1.5 }, { offset: Number.NaN }]) {
      const e = await thrown(() => openFileStream(s, { path: "streams/a.bin", ...bad }));
      expect(RunnerError.isInstance(e) && e.code, JSON.stringify(bad)).toBe("invalid_request");
    }
  });

  if (opts.sandboxScope) {
    check("streams files anywhere in the sandbox's own view", async () => {
      const s = opts.session();
      const path = `/tmp/roder-stream-${randomUUID()}`;
      const bytes = pattern(1024 * 1024 + 5, 11);
      await writeFileFromStream(s, { path }, chunked(bytes));
      expect((await opts.sh(`wc -c < ${path}`)).stdout.trim()).toBe(String(bytes.length));
      const r = await openFileStream(s, { path, offset: 1024 * 1024 });
      expect(r.size).toBe(bytes.length);
      expect((await collect(r.body)).equals(Buffer.from(bytes.subarray(1024 * 1024)))).toBe(true);
      const e = await thrown(() => openFileStream(s, { path: `${path}.missing` }));
      expect(RunnerError.isInstance(e) && e.code).toBe("not_found");
      // A failed streamed write there leaves the old file and no temporary file either.
      const dir = `/tmp/roder-stream-dir-${randomUUID()}`;
      await s.writeFile({ path: `${dir}/keep`, contents: "old" });
      const w = await thrown(() =>
        writeFileFromStream(s, { path: `${dir}/keep` }, chunked(pattern(2 * 1024 * 1024, 5), new Error("x"))),
      );
      expect(w).toBeInstanceOf(Error);
      expect(new TextDecoder().decode((await s.readFile({ path: `${dir}/keep` })).contents)).toBe("old");
      expect((await settled(() => opts.sh(`ls -A ${dir}`), "keep\n")).trim()).toBe("keep");
      await opts.sh(`rm -rf ${path} ${dir}`);
    });
  }
}
