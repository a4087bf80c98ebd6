/**
 * A long command that outlives its client: start it, persist the session state and the command id, drop the
 * connection (as a crashed client would), then attach from a brand-new provider and follow it to the end.
 * Run: pnpm exec tsx packages/http/examples/reattach.ts
 */
import { randomBytes } from "node:crypto";
import { codecs } from "@roder/runner-contract";
import { createHttpRunnerProvider, serveRunner } from "@roder/runner-http";
import { createLocalProvider } from "@roder/runner-local";

const token = randomBytes(24).toString("hex");
const server = await serveRunner({ provider: createLocalProvider(), token, port: 0 });
const env = { RODER_RUNNER_HTTP_TOKEN: token };

// Client 1 starts a build and goes away after the first line.
const first = await createHttpRunnerProvider({ baseUrl: server.url, env }).createSession({
  id: "builds",
  provider_id: "http",
  config: null,
  default_manifest: { entries: [], mounts: [] },
});
const handle = await first.startCommand!({
  command_id: "build-42",
  program: "sh",
  args: ["-c", "for i in 1 2 3 4; do echo step $i; sleep 0.3; done"],
});
for await (const chunk of handle.output) {
  process.stdout.write(`client 1 saw: ${new TextDecoder().decode(chunk.data)}`);
  break;
}
const persisted = codecs.RunnerSessionState.encode(first.state());
await handle.detach!();

// Client 2 has only what was persisted.
const second = await createHttpRunnerProvider({ baseUrl: server.url, env }).resumeSession(
  codecs.RunnerSessionState.decode(persisted),
);
const again = await second.attachCommand!("build-42");
for await (const chunk of again.output)
  process.stdout.write(`client 2 saw: ${new TextDecoder().decode(chunk.data)}`);
console.log("exit", (await again.wait()).exit_code);
await second.close();
await server.close();
