// STUB: signatures fixed; the implementation is being written.
import type { RunnerMountKind } from "./schemas.js";

export type ParsedMountUri =
  | { kind: "s3"; bucket: string; prefix: string }
  | { kind: "r2"; bucket: string; prefix: string }
  | { kind: "gcs"; bucket: string; prefix: string }
  | { kind: "azure_blob"; account: string; container: string; prefix: string; endpoint?: string }
  | { kind: "box_storage"; folderId: string }
  | { kind: "provider_native"; name: string };

/** Parses a mount-intent URI; with `kind`, also checks they match. Throws `InvalidMountUriError`. Prefix has no leading '/'. */
export declare function parseMountUri(uri: string, kind?: RunnerMountKind): ParsedMountUri;
