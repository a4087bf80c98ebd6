// A caller that dies in the middle of createSession (SIGKILL: no finally, no close).
import { createFlyProvider } from "@roder/runner-fly";

setTimeout(() => process.kill(process.pid, "SIGKILL"), Number(process.env.CRASH_AFTER_MS ?? "400"));
await createFlyProvider({ owner: process.env.OWNER }).createSession({
  id: "doomed",
  provider_id: "fly",
  config: { app: "roder-test", image: "debian:bookworm-slim", ttl_seconds: 1 },
  default_manifest: { entries: [], mounts: [] },
});
