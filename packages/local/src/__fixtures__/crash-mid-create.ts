// A caller that dies without close (SIGKILL: no finally). CRASH=mid-create: killed while createSession copies
// the manifest (as soon as its workspace appears under ROOT); CRASH=after-create: right after it returned.
import { readdirSync } from "node:fs";
import { createLocalProvider } from "../local-provider.js";

const root = process.env.ROOT!;
const provider = createLocalProvider({ root, owner: process.env.OWNER, registryDir: `${root}.registry` });
const before = new Set(readdirSync(root));
if (process.env.CRASH === "mid-create") {
  setInterval(() => {
    if (readdirSync(root).some((n) => !before.has(n) && /^local-[0-9a-f-]+$/.test(n)))
      process.kill(process.pid, "SIGKILL");
  }, 1);
}
await provider.createSession({
  id: "doomed",
  provider_id: "unix-local",
  config: { ttl_seconds: Number(process.env.TTL_SECONDS ?? "1") },
  default_manifest: {
    entries: process.env.MANIFEST_SOURCE
      ? [{ source: process.env.MANIFEST_SOURCE, target: "src", writable: true }]
      : [],
    mounts: [],
  },
});
if (process.env.CRASH === "mid-create") process.stderr.write("createSession returned before the kill\n");
process.kill(process.pid, "SIGKILL");
