import { request } from "node:http";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { createLocalProvider } from "@roder/runner-local";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRunnerServer, type RunnerServer } from "./http-server.js";

// Issue 15: a streaming client that never reads grew the server by ~100 MB/s until V8 ran out of heap.
const TOKEN = "memory-token-0c9e4d";
const MiB = 1024 * 1024;
/** The bench's target for this case (a minute of `yes`); a few seconds here must stay well under it. */
const GROWTH_LIMIT_MIB = 256;
setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;
const rss = () => {
  gc();
  return process.memoryUsage().rss / MiB;
};

let server: RunnerServer;
let url = "";
beforeAll(async () => {
  // Default policy: the output cap (16 MiB) bounds what the backend retains for the result, backpressure what
  // the server holds for the unread socket. (With a raised cap, the backend's retention grows with the output.)
  server = createRunnerServer({
    provider: createLocalProvider(),
    token: TOKEN,
    maxOutputLimitBytes: 1024 * MiB,
  });
  url = (await server.listen(0)).url;
});
afterAll(async () => {
  await server.close();
});

describe("a client that never reads its stream", () => {
  it("holds the server's memory bounded while `yes` runs, and the server answers others", async () => {
    const auth = { authorization: `Bearer ${TOKEN}` };
    const created = (await (
      await fetch(`${url}/sessions`, {
        method: "POST",
        headers: auth,
        body: JSON.stringify({ destination_id: "d" }),
      })
    ).json()) as { session_id: string };
    const before = rss();
    const u = new URL(`${url}/sessions/${created.session_id}/commands/stream`);
    const req = request({
      hostname: u.hostname,
      port: u.port,
      path: u.pathname,
      method: "POST",
      headers: auth,
    });
    const started = new Promise<import("node:http").IncomingMessage>((resolve) =>
      req.on("response", resolve),
    );
    req.end(JSON.stringify({ command_id: "flood", program: "yes", args: ["0123456789abcdef".repeat(4)] }));
    const res = await started;
    res.pause(); // never read
    let peak = 0;
    for (let i = 0; i < 20; i++) {
      await new Promise((r) => setTimeout(r, 250));
      peak = Math.max(peak, process.memoryUsage().rss / MiB - before);
    }
    expect((await fetch(`${url}/capabilities`, { headers: auth })).status).toBe(200);
    console.log(`http memory: unread stream of yes for 5 s, peak RSS growth ${peak.toFixed(0)} MiB`);
    expect(peak).toBeLessThan(GROWTH_LIMIT_MIB);
    res.destroy();
    await fetch(`${url}/sessions/${created.session_id}/commands/flood`, { method: "DELETE", headers: auth });
    await fetch(`${url}/sessions/${created.session_id}`, { method: "DELETE", headers: auth });
    expect(rss() - before).toBeLessThan(GROWTH_LIMIT_MIB);
  });
});
