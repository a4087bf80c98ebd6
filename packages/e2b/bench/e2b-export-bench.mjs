// Direct export of 256 MiB (32 MiB short) from an E2B stand-in sandbox: see storage/bench/remote-export.js.
import { writeFileSync } from "node:fs";
import { createE2bProvider } from "@roder/runner-e2b";
import { createLocalProvider } from "@roder/runner-local";
import { startE2bStandIn } from "@roder/runner-testkit";
import { benchRemoteExport } from "../../storage/bench/remote-export.js";

const standIn = await startE2bStandIn({ backend: createLocalProvider() });
try {
  const row = await benchRemoteExport({
    name: "E2B stand-in",
    mib: process.env.BENCH_SHORT === "1" ? 32 : 256,
    open: (artifacts, env) =>
      createE2bProvider({
        apiUrl: standIn.apiUrl,
        sandboxUrl: standIn.sandboxUrl,
        domain: standIn.domain,
        env: { E2B_API_KEY: standIn.apiKey, ...env },
      }).createSession({
        id: "bench-export",
        provider_id: "e2b",
        config: { template: "base", artifacts: { ...artifacts, part_size_mib: 16, parallelism: 8 } },
        default_manifest: { entries: [], mounts: [] },
      }),
  });
  console.table([row]);
  if (process.env.BENCH_OUT) writeFileSync(process.env.BENCH_OUT, JSON.stringify({ rows: [row] }));
} finally {
  await standIn.stop();
}
