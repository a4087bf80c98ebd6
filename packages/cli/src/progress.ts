/** Human units: 3000 → "2.9 KiB". */
export function humanBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${i === 0 ? Math.round(n) : n.toFixed(1)} ${units[i]}`;
}

export interface Progress {
  /** `bytes` moved so far (absolute). */
  update(bytes: number): void;
  /** Clears the line; with `summary`, prints it as the last line. */
  done(summary?: string): void;
}

const quiet: Progress = { update() {}, done() {} };

/**
 * One self-rewriting line on a terminal: `LABEL  45.0 MiB / 300.0 MiB  15%  120.3 MiB/s` (without a known total,
 * no percent). Redrawn at most every 100 ms. Off a terminal it prints nothing.
 */
export function createProgress(opts: {
  label: string;
  total: number | undefined;
  enabled: boolean;
  write: (s: string) => void;
  now?: () => number;
}): Progress {
  if (!opts.enabled) return quiet;
  const now = opts.now ?? Date.now;
  const started = now();
  let last = 0;
  let bytes = 0;
  const line = () => {
    const s = Math.max((now() - started) / 1000, 0.001);
    const total = opts.total;
    const amount = total !== undefined ? `${humanBytes(bytes)} / ${humanBytes(total)}` : humanBytes(bytes);
    const pct =
      total !== undefined ? `  ${total === 0 ? 100 : Math.min(100, Math.floor((bytes / total) * 100))}%` : "";
    return `${opts.label}  ${amount}${pct}  ${humanBytes(bytes / s)}/s`;
  };
  return {
    update(n) {
      bytes = n;
      const t = now();
      if (t - last < 100) return;
      last = t;
      opts.write(`\r\x1b[K${line()}`);
    },
    done(summary) {
      opts.write("\r\x1b[K");
      if (summary) opts.write(`${summary}\n`);
    },
  };
}

/** `N bytes in S s, R/s` for a finished transfer. */
export function transferSummary(bytes: number, startedMs: number, nowMs = Date.now()): string {
  const s = Math.max((nowMs - startedMs) / 1000, 0.001);
  return `${humanBytes(bytes)} (${bytes} bytes) in ${s.toFixed(1)} s, ${humanBytes(bytes / s)}/s`;
}
