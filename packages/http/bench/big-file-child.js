// A server in its own process for the big-file rows, so its memory is measured alone: `raw` is a plain Node
// HTTP server streaming a file from disk (GET) and to disk (PUT); `ours` is the runner server over the local
// runner. Prints `{ url, session, root }` once listening; answers `rss` on stdin with its peak RSS (MiB) since
// the last `reset`.
import { createReadStream, createWriteStream, statSync } from "node:fs";
import { createServer } from "node:http";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { pipeline } from "node:stream/promises";

const mode = process.argv[2];
const dir = process.argv[3];
let peak = 0;
const sample = () => {
  peak = Math.max(peak, process.memoryUsage().rss);
};
setInterval(sample, 50).unref();
createInterface({ input: process.stdin }).on("line", (line) => {
  if (line === "reset") {
    global.gc?.();
    peak = process.memoryUsage().rss;
    process.stdout.write(`${JSON.stringify({ base: peak / 2 ** 20 })}\n`);
  } else if (line === "rss") {
    sample();
    process.stdout.write(`${JSON.stringify({ peak: peak / 2 ** 20 })}\n`);
  } else if (line === "exit") process.exit(0);
});

if (mode === "raw") {
  const server = createServer(async (req, res) => {
    const file = join(dir, "raw.bin");
    try {
      if (req.method === "PUT") {
        await pipeline(req, createWriteStream(file));
        res.writeHead(204).end();
      } else {
        res.writeHead(200, { "content-length": String(statSync(file).size) });
        await pipeline(createReadStream(file), res);
      }
    } catch {
      // A client that hangs up once it has every byte (curl does) closes the response first.
      res.destroy();
    }
  });
  server.listen(0, "127.0.0.1", () =>
    process.stdout.write(`${JSON.stringify({ url: `http://127.0.0.1:${server.address().port}` })}\n`),
  );
} else {
  const { createRunnerServer } = await import("@roder/runner-http");
  const { createLocalProvider } = await import("@roder/runner-local");
  const token = "bench-token-0123456789";
  const server = createRunnerServer({ provider: createLocalProvider(), token });
  const { url } = await server.listen(0);
  const r = await fetch(`${url}/sessions`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}` },
    body: JSON.stringify({ destination_id: "big", config: { isolation: "none" } }),
  });
  const created = await r.json();
  process.stdout.write(`${JSON.stringify({ url, session: created.session_id, token })}\n`);
}
