import type { ChildProcess } from "node:child_process";
import { readdirSync, readFileSync, readlinkSync } from "node:fs";

/** A process this runner started, named with its start time so that a recycled pid is never taken for it. */
export interface ProcRef {
  pid: number;
  start: string;
}

/** `starttime` of /proc/<pid>/stat (clock ticks since boot), or null when the process is gone. */
export function procStart(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19] ?? null;
  } catch {
    return null;
  }
}

export function isAlive(ref: ProcRef): boolean {
  return procStart(ref.pid) === ref.start;
}

export function nsInode(pid: number | "self", ns: string): string | null {
  try {
    return readlinkSync(`/proc/${pid}/ns/${ns}`);
  } catch {
    return null;
  }
}

/** Kills a process we started (never a recycled pid), and waits until it is gone (bounded). */
export async function killRef(ref: ProcRef | null | undefined): Promise<void> {
  if (!ref || !isAlive(ref)) return;
  try {
    process.kill(ref.pid, "SIGKILL");
  } catch {
    return;
  }
  for (let i = 0; i < 200 && isAlive(ref); i++) await new Promise((r) => setTimeout(r, 10));
}

/** Descendants of `pid` (itself first), from /proc's children lists. */
export function descendants(pid: number): number[] {
  const out: number[] = [];
  const queue = [pid];
  while (queue.length && out.length < 256) {
    const p = queue.shift()!;
    out.push(p);
    try {
      for (const tid of readdirSync(`/proc/${p}/task`))
        for (const c of readFileSync(`/proc/${p}/task/${tid}/children`, "utf8").trim().split(/\s+/))
          if (c) queue.push(Number(c));
    } catch {}
  }
  return out;
}

/** What a child writes on stderr (its first 4 KiB), for the error that says why it failed. */
export function collectStderr(child: ChildProcess): () => string {
  let text = "";
  child.stderr?.on("data", (b: Buffer) => {
    if (text.length < 4096) text += b.toString("utf8");
  });
  return () => text;
}
