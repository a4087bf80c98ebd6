// A caller that creates an isolated session, leaves a file in /tmp and a background process in its sandbox,
// prints the session's state and exits without closing it (as `roder-runner exec --keep` does).
import { createLocalProvider } from "../local-provider.js";

const provider = createLocalProvider({ registryDir: process.env.REGISTRY_DIR });
const session = await provider.createSession({
  id: "kept",
  provider_id: "unix-local",
  config: { isolation: process.env.ISOLATION ?? "bwrap" },
  default_manifest: { entries: [], mounts: [] },
});
const token = process.env.TOKEN!;
await session.runCommand({
  command_id: "setup",
  program: "sh",
  args: ["-c", `printf %s "$TOKEN" > /tmp/kept; nohup sleep 600 >/dev/null 2>&1 &`],
  env: [["TOKEN", token]],
});
process.stdout.write(JSON.stringify(session.state()));
process.exit(0);
