/**
 * An operator's server: every session under bubblewrap, clients refused what would weaken it, and a port
 * preview that a browser can open through the server.
 * Run (bubblewrap installed): pnpm exec tsx packages/http/examples/operator-policy.ts
 */
import { randomBytes } from "node:crypto";
import { RunnerError } from "@roder/runner-contract";
import { createHttpRunnerProvider, serveRunner } from "@roder/runner-http";
import { createLocalProvider } from "@roder/runner-local";

const token = randomBytes(24).toString("hex");
const server = await serveRunner({
  provider: createLocalProvider(),
  token,
  port: 0,
  isolation: "bwrap", // what `roder-runner serve` does by default where bwrap is installed
  maxOutputLimitBytes: 8 * 1024 * 1024,
});
const provider = createHttpRunnerProvider({ baseUrl: server.url, env: { RODER_RUNNER_HTTP_TOKEN: token } });
const destination = (backend_config: unknown) => ({
  id: "demo",
  provider_id: "http",
  config: { backend_config },
  default_manifest: { entries: [], mounts: [] },
});

// A client asking for less isolation gets a typed refusal naming the key and the operator's switch.
const refused = await provider.createSession(destination({ isolation: "none" })).catch((e: unknown) => e);
if (RunnerError.isInstance(refused)) console.log(`${refused.code}: ${refused.message}`);

// A web app started in the session, reached through the server's preview URL.
const session = await provider.createSession(destination({}));
const app = await session.startCommand!({
  command_id: "web",
  program: "node",
  args: [
    "-e",
    "require('http').createServer((q,s)=>s.end('hello from the sandbox')).listen(8080,()=>console.log('up'))",
  ],
});
for await (const _ of app.output) break; // wait for "up"
const { url } = await session.exposePort({ port: 8080, label: "web" });
console.log(`preview ${url}: ${await (await fetch(url!)).text()}`);
await session.cancelCommand("web");
await session.close();
await server.close();
