import { promises as fs } from "node:fs";
import { join } from "node:path";

/**
 * The regular files of a manifest entry's host `source` (a file, or a directory walked recursively), with
 * paths relative to it (`""` for a single file). Providers that upload manifest entries file by file use it.
 */
export async function manifestSourceFiles(source: string): Promise<Array<{ rel: string; abs: string }>> {
  const st = await fs.stat(source);
  if (st.isFile()) return [{ rel: "", abs: source }];
  const out: Array<{ rel: string; abs: string }> = [];
  for (const e of await fs.readdir(source, { withFileTypes: true })) {
    const abs = join(source, e.name);
    if (e.isDirectory())
      for (const f of await manifestSourceFiles(abs))
        out.push({ rel: f.rel ? `${e.name}/${f.rel}` : e.name, abs: f.abs });
    else if (e.isFile()) out.push({ rel: e.name, abs });
  }
  return out;
}
