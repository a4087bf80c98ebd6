import { tmpdir } from "node:os";

/** Backend-made names under the server's temp dir (`roder-local-…`, `roder-local-snapshots`, …). */
const TMP_NAMES = new RegExp(`${escapeRegExp(tmpdir().replace(/\/+$/, ""))}/roder-[^\\s'"\`,;:)]*`, "g");

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/**
 * An error message as a client may read it: a session's host paths replaced by what the client sees (its
 * runner root) and its backend id by the server's id; any other path of the backend's under the server's temp
 * dir replaced by `<server path>`.
 */
export function scrubHostPaths(message: string, pairs: ReadonlyArray<readonly [string, string]>): string {
  let out = message;
  // Longest first, so a host root is replaced before a shorter prefix of it.
  for (const [from, to] of [...pairs].sort((a, b) => b[0].length - a[0].length))
    if (from) out = out.split(from).join(to);
  return out.replace(TMP_NAMES, "<server path>");
}
