// Run as an unprivileged user by local-unprivileged.test.ts (against the built package): what an isolated
// destination answers, and whether an unisolated session's daemons end at close. Prints one JSON line.
import { createLocalProvider } from "../../dist/index.js";

const dir = process.env.WORK_DIR;
const provider = createLocalProvider({ registryDir: `${dir}/registry`, root: `${dir}/ws` });
const out = {};
try {
  await provider.validateDestination({
    id: "u",
    provider_id: "unix-local",
    config: { isolation: "bwrap" },
    default_manifest: { entries: [], mounts: [] },
  });
  out.bwrap = "accepted";
} catch (e) {
  out.bwrap = { code: e.code, message: e.message };
}
const s = await provider.createSession({
  id: "u",
  provider_id: "unix-local",
  config: { isolation: "none" },
  default_manifest: { entries: [], mounts: [] },
});
out.tracking = s.state().metadata.process_tracking;
const r = await s.runCommand({
  command_id: "d",
  program: "sh",
  args: ["-c", `nohup sleep 300 ${process.env.TOKEN} >/dev/null 2>&1 & id -u`],
});
out.uid = r.stdout.trim();
await s.close();
process.stdout.write(`${JSON.stringify(out)}\n`);
