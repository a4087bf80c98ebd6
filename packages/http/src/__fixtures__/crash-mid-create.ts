// A caller that dies without close (SIGKILL: no finally): CRASH_AFTER_MS set, while POST /sessions is still
// waiting; else right after createSession returned. URL and token from RODER_RUNNER_HTTP_URL / _TOKEN.
import { createHttpRunnerProvider } from "../http-provider.js";

if (process.env.CRASH_AFTER_MS)
  setTimeout(() => process.kill(process.pid, "SIGKILL"), Number(process.env.CRASH_AFTER_MS));
await createHttpRunnerProvider({ owner: process.env.OWNER }).createSession({
  id: "doomed",
  provider_id: "http",
  config: { ttl_seconds: Number(process.env.TTL_SECONDS ?? "60") },
  default_manifest: { entries: [], mounts: [] },
});
if (process.env.CRASH_AFTER_MS) process.stderr.write("createSession returned before the kill\n");
process.kill(process.pid, "SIGKILL");
