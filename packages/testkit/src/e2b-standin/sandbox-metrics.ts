import { randomBytes } from "node:crypto";
import type { RemoteRunnerSession } from "@roder/runner-contract";

/**
 * A sandbox's resource figures as its envd reports them (`/metrics`) and E2B's control plane keeps them
 * (`GET /sandboxes/{id}/metrics`), measured inside the sandbox: CPUs and CPU time (`/proc/stat`), memory
 * (`/proc/meminfo`: the machine's, which a bubblewrap sandbox shares) and the disk under the workspace.
 */
export interface SandboxMetricSample {
  cpuCount: number;
  cpuUsedPct: number;
  memTotal: number;
  memUsed: number;
  memCache: number;
  diskUsed: number;
  diskTotal: number;
  /** `/proc/stat` totals (busy, all) for the next sample's CPU percentage. */
  cpuTicks: [number, number];
}

const SCRIPT =
  'nproc; head -n 1 /proc/stat; grep -E "^(MemTotal|MemAvailable|Cached):" /proc/meminfo; df -P -B1 "$1" | tail -n 1';

export async function sandboxMetrics(
  session: RemoteRunnerSession,
  workspace: string,
  previous?: [number, number],
): Promise<SandboxMetricSample> {
  const r = await session.runCommand({
    command_id: `envd-metrics-${randomBytes(4).toString("hex")}`,
    program: "sh",
    args: ["-c", SCRIPT, "sh", workspace],
  });
  if (r.exit_code !== 0) throw new Error(`metrics failed: ${r.stderr.trim()}`);
  const lines = r.stdout.trim().split("\n");
  const cpuCount = Number(lines[0]);
  const ticks = (lines[1] ?? "").trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal: idle + iowait are not busy.
  const all = ticks.slice(0, 8).reduce((a, b) => a + b, 0);
  const busy = all - (ticks[3] ?? 0) - (ticks[4] ?? 0);
  const kib = (name: string) => {
    const line = lines.find((l) => l.startsWith(`${name}:`));
    return Number(/(\d+)/.exec(line ?? "")?.[1] ?? 0) * 1024;
  };
  const df = (lines[lines.length - 1] ?? "").trim().split(/\s+/);
  const [pBusy, pAll] = previous ?? [0, 0];
  const cpuUsedPct = all > pAll ? Math.round(((busy - pBusy) / (all - pAll)) * 10000) / 100 : 0;
  return {
    cpuCount,
    cpuUsedPct,
    memTotal: kib("MemTotal"),
    memUsed: kib("MemTotal") - kib("MemAvailable"),
    memCache: kib("Cached"),
    diskUsed: Number(df[2] ?? 0),
    diskTotal: Number(df[1] ?? 0),
    cpuTicks: [busy, all],
  };
}
