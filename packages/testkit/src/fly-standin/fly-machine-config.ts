import type { FlyStandInMachine } from "./fly-standin-types.js";

/** Fly's guest sizes (docs: machines/guides-examples/machine-sizing): a message naming the limit, or null. */
export function guestProblem(guest: unknown): string | null {
  if (guest === undefined || guest === null) return null;
  const g = guest as { cpu_kind?: unknown; cpus?: unknown; memory_mb?: unknown };
  const kind = g.cpu_kind ?? "shared";
  if (kind !== "shared" && kind !== "performance")
    return `invalid cpu_kind '${String(kind)}': shared or performance`;
  const cpus = g.cpus ?? 1;
  const allowed = kind === "shared" ? [1, 2, 4, 6, 8] : [1, 2, 4, 6, 8, 10, 12, 14, 16];
  if (typeof cpus !== "number" || !allowed.includes(cpus))
    return `invalid number of ${kind} cpus ${String(cpus)}: one of ${allowed.join(", ")}`;
  const mem = g.memory_mb ?? (kind === "shared" ? 256 * cpus : 2048 * cpus);
  if (typeof mem !== "number" || !Number.isInteger(mem) || mem % 256 !== 0)
    return `invalid memory size ${String(mem)} MB: a multiple of 256 MB`;
  if (kind === "shared" && (mem < 256 * cpus || mem > 2048 * cpus))
    return `invalid memory size ${mem} MB for ${cpus} shared cpu(s): between ${256 * cpus} and ${2048 * cpus} MB`;
  if (kind === "performance" && mem < 2048 * cpus)
    return `invalid memory size ${mem} MB for ${cpus} performance cpu(s): at least ${2048 * cpus} MB`;
  return null;
}

/** Why Fly refuses to suspend a machine of this config (docs: machines/suspend-resume), or null. */
export function suspendProblem(config: Record<string, unknown>): string | null {
  const g = (config.guest ?? {}) as {
    cpu_kind?: string;
    cpus?: number;
    memory_mb?: number;
    swap_size_mb?: number;
  };
  const mem = g.memory_mb ?? (g.cpu_kind === "performance" ? 2048 : 256) * (g.cpus ?? 1);
  if (mem > 4096)
    return `machines with more than 4096 MB of memory cannot be suspended (this one has ${mem} MB)`;
  if ((g.swap_size_mb ?? 0) > 0) return "machines with swap cannot be suspended";
  if (config.schedule) return "machines with a schedule cannot be suspended";
  return null;
}

/** The machine's service port (`config.services[0].internal_port`). */
export const servicePort = (m: Pick<FlyStandInMachine, "config">) =>
  (m.config as { services?: Array<{ internal_port?: unknown }> }).services?.[0]?.internal_port;
