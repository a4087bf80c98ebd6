import { createLocalProvider } from "@roder/runner-local";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHttpRunnerProvider } from "./http-provider.js";
import { createRunnerServer, type RunnerServer } from "./http-server.js";

// Issue 20 item 1 over HTTP: a command's stdin with byte offsets, so a resent write is applied once.
const TOKEN = "stdin-token-3b9f0c2d";
const auth = { authorization: `Bearer ${TOKEN}` };
let server: RunnerServer;
let url = "";
let sid = "";

beforeAll(async () => {
  server = createRunnerServer({ provider: createLocalProvider(), token: TOKEN });
  url = (await server.listen(0)).url;
  const created = (await (
    await fetch(`${url}/sessions`, {
      method: "POST",
      headers: auth,
      body: JSON.stringify({ destination_id: "d", config: { isolation: "none" } }),
    })
  ).json()) as { session_id: string };
  sid = created.session_id;
});
afterAll(async () => {
  await server.close();
});

/** Starts `argv` streaming with its stdin open; the NDJSON lines as they come. */
async function start(commandId: string, argv: string[], extra: Record<string, unknown> = { stdin: true }) {
  const res = await fetch(`${url}/sessions/${sid}/commands/stream`, {
    method: "POST",
    headers: auth,
    body: JSON.stringify({ command_id: commandId, program: argv[0], args: argv.slice(1), ...extra }),
  });
  expect(res.status).toBe(200);
  const text = res.text();
  return {
    lines: async () =>
      (await text)
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l)),
  };
}

const write = (cid: string, offset: number | string, body: string) =>
  fetch(`${url}/sessions/${sid}/commands/${cid}/stdin?offset=${offset}`, {
    method: "POST",
    headers: auth,
    body,
  });

describe("POST /commands/{id}/stdin with offsets", () => {
  it("applies a resent write once, writes only the new tail of an overlap, refuses a gap", async () => {
    const s = await start("cat1", ["cat"]);
    expect(await (await write("cat1", 0, "abc")).json()).toEqual({ offset: 3 });
    // The same write again (its answer was lost): nothing new.
    expect(await (await write("cat1", 0, "abc")).json()).toEqual({ offset: 3 });
    // Overlapping: "c" is already in, "de" is new.
    expect(await (await write("cat1", 2, "cde")).json()).toEqual({ offset: 5 });
    // A gap: bytes 5..6 never arrived.
    const gap = await write("cat1", 7, "zz");
    expect(gap.status).toBe(409);
    expect(((await gap.json()) as { error: { code: string; message: string } }).error).toMatchObject({
      code: "stdin_gap",
    });
    for (const bad of ["", "-1", "1.5", "x"]) expect((await write("cat1", bad, "q")).status).toBe(400);
    const close = () =>
      fetch(`${url}/sessions/${sid}/commands/cat1/stdin/close`, { method: "POST", headers: auth });
    expect((await close()).status).toBe(204);
    expect((await close()).status).toBe(204);
    const lines = await s.lines();
    expect(lines[0]).toMatchObject({ type: "started", stdin_offset: 0 });
    const result = lines.find((l) => l.type === "result").result;
    expect(result.stdout).toBe("abcde");
    expect(result.exit_code).toBe(0);
  });

  it("refuses stdin to a command that takes none, and resize to one with no terminal", async () => {
    const s = await start("plain", ["sleep", "1"], {});
    const r = await write("plain", 0, "x");
    expect(r.status).toBe(409);
    expect(((await r.json()) as { error: { code: string } }).error.code).toBe("stdin_closed");
    const c = await start("nopty", ["cat"]);
    const rs = await fetch(`${url}/sessions/${sid}/commands/nopty/resize`, {
      method: "POST",
      headers: auth,
      body: JSON.stringify({ cols: 80, rows: 24 }),
    });
    expect(rs.status).toBe(409);
    const bad = await fetch(`${url}/sessions/${sid}/commands/nopty/resize`, {
      method: "POST",
      headers: auth,
      body: "{not json",
    });
    expect(bad.status).toBe(400);
    await fetch(`${url}/sessions/${sid}/commands/nopty/stdin/close`, { method: "POST", headers: auth });
    await s.lines();
    await c.lines();
    const badPty = await fetch(`${url}/sessions/${sid}/commands/stream`, {
      method: "POST",
      headers: auth,
      body: JSON.stringify({ command_id: "bp", program: "true", pty: { cols: 0, rows: 24 } }),
    });
    expect(badPty.status).toBe(400);
  });

  it("a second client attaching continues at the server's offset", async () => {
    const provider = createHttpRunnerProvider({ baseUrl: url, token: TOKEN });
    const state = {
      provider_id: "http",
      session_id: sid,
      destination_id: "d",
      snapshot: null,
      metadata: { base_url: url },
    };
    const a = await (await provider.resumeSession(state)).startCommand!({
      command_id: "shared",
      program: "cat",
      stdin: true,
    });
    await a.write!("one ");
    await a.detach!();
    const b = await (await provider.resumeSession(state)).attachCommand!("shared");
    await b.write!("two");
    await b.closeStdin!();
    const r = await b.wait();
    expect(r.stdout).toBe("one two");
  });
});
