/**
 * A runner server over the local provider, and the HTTP provider talking to it.
 * Run: pnpm exec tsx packages/http/examples/serve-and-connect.ts
 */
import { randomBytes } from "node:crypto";
import { createHttpRunnerProvider, serveRunner } from "@roder/runner-http";
import { createLocalProvider } from "@roder/runner-local";

const token = randomBytes(24).toString("hex");
const server = await serveRunner({ provider: createLocalProvider(), token, port: 0 });
console.log(`server listening on ${server.url}`);

const provider = createHttpRunnerProvider({ baseUrl: server.url, env: { RODER_RUNNER_HTTP_TOKEN: token } });
const session = await provider.createSession({
  id: "remote",
  provider_id: "http",
  config: null,
  default_manifest: { entries: [], mounts: [] },
});
const result = await session.runCommand({ command_id: "c1", program: "uname", args: ["-sr"] });
console.log("uname:", result.stdout.trim(), "exit", result.exit_code);
const handle = await session.startCommand!({
  command_id: "c2",
  program: "sh",
  args: ["-c", "for i in 1 2 3; do echo tick $i; sleep 0.2; done"],
});
for await (const chunk of handle.output)
  process.stdout.write(`streamed ${new TextDecoder().decode(chunk.data)}`);
await session.close();
await server.close();
