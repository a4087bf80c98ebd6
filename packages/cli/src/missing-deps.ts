import { existsSync, realpathSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * Optional packages that go together: when one of a group is missing, the CLI names every missing member at
 * once (one `npm install` line), rather than one per try.
 */
const GROUPS: string[][] = [
  ["@aws-sdk/client-s3", "@aws-sdk/s3-request-presigner", "@aws-sdk/lib-storage"],
  ["@azure/storage-blob"],
  ["@google-cloud/storage"],
  ["@roder/runner-e2b"],
];

/**
 * The directory of package `name` as an ESM import from `fromDir` finds it: the nearest `node_modules/<name>` up
 * the tree, symlinks resolved (NODE_PATH, which `require.resolve` would also search, plays no part in `import`).
 */
function packageDir(name: string, fromDir: string): string | null {
  let dir = fromDir;
  for (;;) {
    const candidate = join(dir, "node_modules", name);
    if (existsSync(join(candidate, "package.json"))) return realpathSync(candidate);
    const up = dirname(dir);
    if (up === dir) return null;
    dir = up;
  }
}

/**
 * Whether `name` is installed where the library that loads it looks: beside `@roder/runner-storage` (the cloud
 * SDKs are its optional peers, reached through `@roder/runner-local`), or beside the CLI.
 */
function installed(name: string): boolean {
  const cli = dirname(realpathSync(fileURLToPath(import.meta.url)));
  const local = packageDir("@roder/runner-local", cli);
  const storage = local ? packageDir("@roder/runner-storage", local) : null;
  return [storage, cli].some((from) => from !== null && packageDir(name, from) !== null);
}

/** Every missing package of the group `name` belongs to (at least `name` itself). */
export function missingWith(name: string): string[] {
  const group = GROUPS.find((g) => g.includes(name)) ?? [name];
  const missing = group.filter((p) => p === name || !installed(p));
  return missing.length ? missing : [name];
}
