import { InvalidMountUriError } from "./errors/invalid-mount-uri-error.js";
import type { RunnerMountKind } from "./schemas.js";

export type ParsedMountUri =
  | { kind: "s3"; bucket: string; prefix: string }
  | { kind: "r2"; bucket: string; prefix: string }
  | { kind: "gcs"; bucket: string; prefix: string }
  | { kind: "azure_blob"; account: string; container: string; prefix: string; endpoint?: string }
  | { kind: "box_storage"; folderId: string }
  | { kind: "provider_native"; name: string };

const SCHEME_KIND: Record<string, RunnerMountKind> = {
  s3: "s3",
  r2: "r2",
  gs: "gcs",
  gcs: "gcs",
  azure: "azure_blob",
  https: "azure_blob",
  box: "box_storage",
};

function cleanPrefix(uri: string, kind: string, raw: string): string {
  let prefix = raw;
  try {
    prefix = decodeURIComponent(raw);
  } catch {
    throw new InvalidMountUriError({ uri, kind, reason: "the prefix has a malformed %-escape" });
  }
  if (prefix.includes("\u0000"))
    throw new InvalidMountUriError({ uri, kind, reason: "the prefix contains a NUL byte" });
  const segs = prefix.split("/");
  if (segs.some((s) => s === ".." || s === "."))
    throw new InvalidMountUriError({ uri, kind, reason: "the prefix must not contain '.' or '..' segments" });
  return prefix.replace(/^\/+/, "");
}

function checkS3Bucket(uri: string, kind: "s3" | "r2", bucket: string): void {
  const ok =
    /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket) &&
    !bucket.includes("..") &&
    !/^\d+\.\d+\.\d+\.\d+$/.test(bucket) &&
    (kind === "s3" || !bucket.includes("."));
  if (!ok) {
    throw new InvalidMountUriError({
      uri,
      kind,
      reason: `bucket name '${bucket}' is not valid: 3-63 characters, lowercase letters, digits${kind === "s3" ? ", dots" : ""} and hyphens, starting and ending with a letter or digit`,
    });
  }
}

function checkGcsBucket(uri: string, bucket: string): void {
  const ok =
    /^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$/.test(bucket) &&
    bucket.split(".").every((p) => p.length > 0 && p.length <= 63) &&
    (bucket.includes(".") || bucket.length <= 63) &&
    !bucket.startsWith("goog");
  if (!ok)
    throw new InvalidMountUriError({
      uri,
      kind: "gcs",
      reason: `bucket name '${bucket}' is not a valid GCS bucket name`,
    });
}

function checkAzure(uri: string, account: string, container: string): void {
  if (!/^[a-z0-9]{3,24}$/.test(account)) {
    throw new InvalidMountUriError({
      uri,
      kind: "azure_blob",
      reason: `storage account '${account}' must be 3-24 lowercase letters or digits`,
    });
  }
  if (!/^(?=.{3,63}$)[a-z0-9]+(-[a-z0-9]+)*$/.test(container) && container !== "$root") {
    throw new InvalidMountUriError({
      uri,
      kind: "azure_blob",
      reason: `container '${container}' must be 3-63 lowercase letters, digits and single hyphens`,
    });
  }
}

/**
 * Parses a mount-intent URI: `s3://bucket/prefix`, `r2://bucket/prefix`, `gs://bucket/prefix`,
 * `azure://account/container/prefix` or `https://<account>.blob.core.windows.net/<container>/<prefix>`,
 * `box://<folder-id>` (`box://0` is the root folder). With `kind`, also checks that kind and URI agree;
 * `provider_native` takes any non-empty name. Throws `InvalidMountUriError`. The prefix has no leading `/`.
 */
export function parseMountUri(uri: string, kind?: RunnerMountKind): ParsedMountUri {
  if (typeof uri !== "string" || uri.trim() === "")
    throw new InvalidMountUriError({
      uri: String(uri),
      ...(kind ? { kind } : {}),
      reason: "the URI is empty",
    });
  if (kind === "provider_native") {
    if (uri.includes("\u0000")) throw new InvalidMountUriError({ uri, kind, reason: "contains a NUL byte" });
    return { kind: "provider_native", name: uri };
  }
  const m = /^([a-z][a-z0-9+.-]*):\/\/([^/?#]*)(\/[^?#]*)?([?#].*)?$/i.exec(uri);
  if (!m)
    throw new InvalidMountUriError({
      uri,
      ...(kind ? { kind } : {}),
      reason: "expected <scheme>://<bucket>/<prefix>",
    });
  const scheme = m[1]!.toLowerCase();
  const host = m[2]!;
  const rest = m[3] ?? "";
  if (m[4])
    throw new InvalidMountUriError({
      uri,
      ...(kind ? { kind } : {}),
      reason: "query strings and fragments are not allowed (credentials go in env secret refs)",
    });
  const uriKind = SCHEME_KIND[scheme];
  if (!uriKind)
    throw new InvalidMountUriError({
      uri,
      ...(kind ? { kind } : {}),
      reason: `unknown scheme '${scheme}://' (expected s3, r2, gs, azure, https://<account>.blob.core.windows.net or box)`,
    });
  if (kind && kind !== uriKind)
    throw new InvalidMountUriError({
      uri,
      kind,
      reason: `a ${kind} mount needs a ${expectedScheme(kind)} URI, not ${scheme}://`,
    });
  if (host.includes("@"))
    throw new InvalidMountUriError({
      uri,
      kind: uriKind,
      reason: "credentials must not be in the URI: use an env secret ref",
    });
  switch (uriKind) {
    case "s3":
    case "r2":
      checkS3Bucket(uri, uriKind, host);
      return { kind: uriKind, bucket: host, prefix: cleanPrefix(uri, uriKind, rest) };
    case "gcs":
      checkGcsBucket(uri, host);
      return { kind: "gcs", bucket: host, prefix: cleanPrefix(uri, "gcs", rest) };
    case "azure_blob": {
      if (scheme === "https") {
        const hm = /^([a-z0-9]+)\.blob\.core\.windows\.net$/.exec(host.toLowerCase());
        if (!hm)
          throw new InvalidMountUriError({
            uri,
            kind: "azure_blob",
            reason: "an https Azure URI must be https://<account>.blob.core.windows.net/<container>/<prefix>",
          });
        const [container = "", ...prefix] = rest.replace(/^\//, "").split("/");
        checkAzure(uri, hm[1]!, container);
        return {
          kind: "azure_blob",
          account: hm[1]!,
          container,
          prefix: cleanPrefix(uri, "azure_blob", prefix.join("/")),
          endpoint: `https://${host.toLowerCase()}`,
        };
      }
      const [container = "", ...prefix] = rest.replace(/^\//, "").split("/");
      checkAzure(uri, host, container);
      return {
        kind: "azure_blob",
        account: host,
        container,
        prefix: cleanPrefix(uri, "azure_blob", prefix.join("/")),
      };
    }
    case "box_storage": {
      if (!/^\d{1,20}$/.test(host) || (rest !== "" && rest !== "/")) {
        throw new InvalidMountUriError({
          uri,
          kind: "box_storage",
          reason: "expected box://<numeric folder id> (box://0 is the root folder)",
        });
      }
      return { kind: "box_storage", folderId: host };
    }
    default:
      throw new InvalidMountUriError({ uri, reason: "unsupported mount kind" });
  }
}

function expectedScheme(kind: RunnerMountKind): string {
  switch (kind) {
    case "s3":
      return "s3://";
    case "r2":
      return "r2://";
    case "gcs":
      return "gs://";
    case "azure_blob":
      return "azure:// or https://<account>.blob.core.windows.net";
    case "box_storage":
      return "box://";
    default:
      return "provider-specific";
  }
}
