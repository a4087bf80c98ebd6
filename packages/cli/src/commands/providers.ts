import { codecs, type RunnerCapabilities } from "@roder/runner-contract";
import { type CommandArgs, EXIT } from "../cli-base.js";

/** `roder-runner providers`: the installed providers, their capabilities and setup hints. */
export async function providersCommand(a: CommandArgs): Promise<number> {
  const { v, io, registry } = a;
  const list = registry.list();
  if (v.json) {
    io.stdout(
      `${JSON.stringify(
        list.map((p) => ({
          id: p.id,
          capabilities: JSON.parse(codecs.RunnerCapabilities.encode(p.capabilities)),
          setup_hint: p.setupHint,
        })),
        null,
        2,
      )}\n`,
    );
    return EXIT.ok;
  }
  const w = Math.max(...list.map((p) => p.id.length), 8);
  io.stdout(`${"PROVIDER".padEnd(w)}  CAPABILITIES\n`);
  for (const p of list) {
    io.stdout(`${p.id.padEnd(w)}  ${capsLine(p.capabilities)}\n`);
    if (p.setupHint) io.stdout(`${" ".repeat(w)}  setup: ${p.setupHint}\n`);
  }
  return EXIT.ok;
}

function capsLine(c: RunnerCapabilities): string {
  const flags = (
    [
      "command_exec",
      "file_read",
      "file_write",
      "port_preview",
      "snapshots",
      "cancellation",
      "artifact_export",
    ] as const
  ).filter((k) => c[k]);
  const mounts = Object.entries(c.mounts)
    .filter(([, v]) => v)
    .map(([k]) => k);
  return `${flags.join(", ")}${mounts.length ? `; mounts: ${mounts.join(", ")}` : ""}`;
}
