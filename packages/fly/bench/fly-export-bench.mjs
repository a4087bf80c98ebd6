// Direct export of 256 MiB (32 MiB short) from a Fly stand-in machine, exec mode with the stand-in's
// defaults (rate limits, 30 s exec limit): see storage/bench/remote-export.js.
import { writeFileSync } from "node:fs";
import { createFlyProvider } from "@roder/runner-fly";
import { createLocalProvider } from "@roder/runner-local";
import { startFlyStandIn } from "@roder/runner-testkit";
import { benchRemoteExport } from "../../storage/bench/remote-export.js";

const standIn = await startFlyStandIn({ backend: createLocalProvider() });
try {
  const row = await benchRemoteExport({
    name: "Fly stand-in (exec mode)",
    mib: process.env.BENCH_SHORT === "1" ? 32 : 256,
    open: (artifacts, env) =>
      createFlyProvider({
        baseUrl: standIn.baseUrl,
        env: { FLY_API_TOKEN: standIn.token, ...env },
      }).createSession({
        id: "bench-export",
        provider_id: "fly",
        config: {
          app: "bench",
          image: "debian:bookworm-slim",
          artifacts: { ...artifacts, part_size_mib: 16, parallelism: 8 },
        },
        default_manifest: { entries: [], mounts: [] },
      }),
  });
  console.table([row]);
  if (process.env.BENCH_OUT) writeFileSync(process.env.BENCH_OUT, JSON.stringify({ rows: [row] }));
} finally {
  await standIn.stop();
}
