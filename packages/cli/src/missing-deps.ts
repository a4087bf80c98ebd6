import { createRequire } from "node:module";
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
 * Whether `name` resolves the way the library that loads it would resolve it: from `@roder/runner-storage`
 * (the cloud SDKs are its optional peers), reached through `@roder/runner-local`; from the CLI otherwise.
 */
function installed(name: string): boolean {
  const froms: string[] = [];
  try {
    const local = fileURLToPath(import.meta.resolve("@roder/runner-local"));
    froms.push(createRequire(local).resolve("@roder/runner-storage"));
  } catch {
    // no storage package: resolve from the CLI only
  }
  froms.push(fileURLToPath(import.meta.url));
  for (const from of froms) {
    try {
      createRequire(from).resolve(name);
      return true;
    } catch (error) {
      // An ESM-only package whose exports have no `require` condition is there all the same.
      if ((error as NodeJS.ErrnoException).code === "ERR_PACKAGE_PATH_NOT_EXPORTED") return true;
    }
  }
  return false;
}

/** Every missing package of the group `name` belongs to (at least `name` itself). */
export function missingWith(name: string): string[] {
  const group = GROUPS.find((g) => g.includes(name)) ?? [name];
  const missing = group.filter((p) => p === name || !installed(p));
  return missing.length ? missing : [name];
}
