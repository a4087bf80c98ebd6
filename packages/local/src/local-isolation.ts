import { existsSync } from "node:fs";
import { delimiter, join } from "node:path";

/** Finds an executable on PATH (no shell). */
export function which(program: string, path = process.env.PATH ?? "/usr/bin:/bin"): string | null {
  for (const dir of path.split(delimiter)) {
    const full = join(dir, program);
    if (existsSync(full)) return full;
  }
  return null;
}
