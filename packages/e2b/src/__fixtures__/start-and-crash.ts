// A client that starts a command in a sandbox, sees its first output, prints what it would have persisted
// (the session state and the command id) and dies (SIGKILL: no finally, no close, no kill).
import { createE2bProvider } from "../e2b-provider.js";

const session = await createE2bProvider().createSession({
  id: "crashy",
  provider_id: "e2b",
  config: { template: "base", ttl_seconds: 60 },
  default_manifest: { entries: [], mounts: [] },
});
const handle = await session.startCommand!({
  command_id: "long-1",
  program: "sh",
  // "two" waits for the test to write `go` (after it attached): the check does not depend on timing.
  args: [
    "-c",
    "echo one; while [ ! -e go ]; do sleep 0.1; done; echo two; sleep 0.5; echo three; echo done > finished.txt",
  ],
});
for await (const chunk of handle.output) {
  if (new TextDecoder().decode(chunk.data).includes("one")) break;
}
process.stdout.write(`${JSON.stringify({ state: session.state(), command_id: handle.commandId })}\n`, () =>
  process.kill(process.pid, "SIGKILL"),
);
