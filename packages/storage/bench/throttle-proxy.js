// A TCP proxy that caps every connection's upload (client → server) at a fixed rate, as one connection to a
// real object store is capped (order of 50 MiB/s for S3): a single stream is slow, parallel parts add up.
import { connect, createServer } from "node:net";

/** Starts the proxy on 127.0.0.1 (free port) in front of `target` ("http://host:port"). */
export async function startThrottleProxy(target, bytesPerSecond) {
  const to = new URL(target);
  const sockets = new Set();
  const server = createServer((client) => {
    const upstream = connect({ host: to.hostname, port: Number(to.port) });
    sockets.add(client);
    sockets.add(upstream);
    // When the bytes read so far are due at the capped rate; idle time earns no credit (keep-alive reuse).
    let due = performance.now();
    let timer = null;
    // Reading resumes once the upstream has drained and those bytes are due.
    const schedule = () => {
      clearTimeout(timer);
      if (upstream.writableNeedDrain) return; // "drain" schedules again
      const ahead = due - performance.now();
      if (ahead > 0) timer = setTimeout(schedule, ahead);
      else client.resume();
    };
    client.on("data", (chunk) => {
      due = Math.max(due, performance.now()) + (chunk.length / bytesPerSecond) * 1000;
      upstream.write(chunk);
      client.pause();
      schedule();
    });
    upstream.on("drain", schedule);
    upstream.pipe(client);
    const close = () => {
      clearTimeout(timer);
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on("error", close);
    upstream.on("error", close);
    client.on("close", close);
    upstream.on("close", close);
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  return {
    endpoint: `http://127.0.0.1:${server.address().port}`,
    async stop() {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}
