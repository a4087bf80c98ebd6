import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { createFaultSwitch } from "../fault/faults.js";
import { startHttpsInterceptProxy } from "../https-intercept/intercept-proxy.js";
import { createE2bContext } from "./e2b-context.js";
import { createControlPlane } from "./e2b-control-plane.js";
import { createEdge } from "./e2b-edge.js";
import type { E2bStandIn, E2bStandInOptions } from "./e2b-standin-types.js";
import { createEnvd } from "./envd.js";

export type { E2bStandIn, E2bStandInOptions, E2bStandInSandbox } from "./e2b-standin-types.js";

// The stand-in's options, sandboxes and processes: e2b-standin-types.ts (with its description). Its parts share one
// context (e2b-context.ts: settings, sandboxes, snapshots, a sandbox's lifecycle): the control plane
// (e2b-control-plane.ts), envd (envd.ts: the process service in envd-process.ts, the filesystem in
// envd-filesystem.ts) and the edge that routes between them and to a sandbox's ports (e2b-edge.ts).
export async function startE2bStandIn(options: E2bStandInOptions): Promise<E2bStandIn> {
  const ctx = createE2bContext(options);
  const { apiKey, domain, sandboxes, timedOut, destroy } = ctx;
  const requests: E2bStandIn["requests"] = [];
  const faults = createFaultSwitch((status) =>
    JSON.stringify({
      code: status,
      message: status === 429 ? "rate limit exceeded" : "internal server error",
    }),
  );
  const handle = createEdge(ctx, {
    control: createControlPlane(ctx),
    envd: createEnvd(ctx),
    faults,
    requests,
  });
  const server = createServer(handle);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  // The same edge over TLS, for `https://<port>-<id>.<domain>`: requests arrive with that Host, routed as above.
  const tlsEdge = options.httpsEdge
    ? await startHttpsInterceptProxy({ hosts: { [`*.${domain}`]: handle } })
    : undefined;
  const port = (server.address() as AddressInfo).port;
  const base = `http://127.0.0.1:${port}`;
  return {
    apiUrl: base,
    sandboxUrl: base,
    domain,
    apiKey,
    sandboxes: () => [...sandboxes.values()],
    timedOut,
    async killSandbox(id) {
      const s = sandboxes.get(id);
      if (s) await destroy(s);
    },
    faults,
    requests,
    ...(tlsEdge ? { httpsEdge: { proxyUrl: tlsEdge.url, caCertFile: tlsEdge.ca.certFile } } : {}),
    async stop() {
      await tlsEdge?.stop();
      for (const s of [...sandboxes.values()]) await destroy(s);
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
