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
    const start = performance.now();
    let sent = 0;
    let timer = null;
    client.on("data", (chunk) => {
      sent += chunk.length;
      if (!upstream.write(chunk)) client.pause();
      // Pace: the bytes sent so far are due at start + sent / rate; wait until then before reading more.
      const ahead = start + (sent / bytesPerSecond) * 1000 - performance.now();
      if (ahead > 1) {
        client.pause();
        clearTimeout(timer);
        timer = setTimeout(() => {
          if (upstream.writableNeedDrain) return;
          client.resume();
        }, ahead);
      }
    });
    upstream.on("drain", () => {
      if (start + (sent / bytesPerSecond) * 1000 <= performance.now()) client.resume();
    });
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
