// A client that starts a streaming command, sees its first output, prints what it would have persisted
// (the session state and the command id) and dies (SIGKILL: no finally, no close, no cancel).
import { createHttpRunnerProvider } from "../http-provider.js";

const provider = createHttpRunnerProvider({ baseUrl: process.env.RUNNER_URL! });
const session = await provider.createSession({
  id: "crashy",
  provider_id: "http",
  config: { backend_config: { isolation: "none" } },
  default_manifest: { entries: [], mounts: [] },
});
const handle = await session.startCommand!({
  command_id: "long-1",
  program: "sh",
  args: ["-c", "echo one; sleep 1; echo two; sleep 1; echo three; echo done > finished.txt"],
});
for await (const chunk of handle.output) {
  if (new TextDecoder().decode(chunk.data).includes("one")) break;
}
process.stdout.write(`${JSON.stringify({ state: session.state(), command_id: handle.commandId })}\n`, () =>
  process.kill(process.pid, "SIGKILL"),
);
