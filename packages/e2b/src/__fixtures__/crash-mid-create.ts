// A caller that dies right after its sandbox was created, before close (SIGKILL: no finally).
import { createE2bProvider } from "@roder/runner-e2b";

await createE2bProvider({ owner: process.env.OWNER }).createSession({
  id: "doomed",
  provider_id: "e2b",
  config: { template: "base", ttl_seconds: 30 },
  default_manifest: { entries: [], mounts: [] },
});
process.kill(process.pid, "SIGKILL");
