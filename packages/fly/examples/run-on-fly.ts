/**
 * FLY_API_TOKEN=… pnpm exec tsx packages/fly/examples/run-on-fly.ts my-app
 * Creates a machine in the app, runs a command in it and destroys it.
 */
import { createFlyProvider } from "@roder/runner-fly";

const app = process.argv[2];
if (!app) throw new Error("usage: run-on-fly.ts <fly-app>");
const provider = createFlyProvider();
const hint = provider.setupHint();
if (hint) throw new Error(hint);
const session = await provider.createSession({
  id: "example",
  provider_id: "fly",
  config: { app, image: "debian:bookworm-slim", cmd: ["sleep", "infinity"], region: "ams" },
  default_manifest: { entries: [], mounts: [] },
});
try {
  const r = await session.runCommand({
    command_id: "hello",
    program: "sh",
    args: ["-c", "echo hello from $(hostname)"],
    timeout_ms: 30_000,
  });
  console.log(r.stdout.trim());
} finally {
  await session.close();
}
