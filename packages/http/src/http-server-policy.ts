import { InvalidDestinationConfigError, RunnerError, type RunnerManifest } from "@roder/runner-contract";

/**
 * What the operator of a runner server decides and a client can never lower: isolation, network, retention,
 * output limits, the endpoints that receive the server's credentials, the host's own paths. Every key of a
 * client's backend config that would weaken one of them is refused with a 403 `config_refused` naming the key
 * and the option (or `roder-runner serve` flag) that allows it. The server knows no backend package: the
 * rules are over config keys (those of the local runner; a backend without such keys is not affected).
 */
export interface RunnerServerPolicy {
  /**
   * Isolation of every session. `"bwrap"`: `isolation: "bwrap"` is set in every backend config and a client's
   * `isolation: "none"` is refused. `"none"` or unset: a client may ask for either.
   */
  isolation?: "bwrap" | "none";
  /** Let clients ask for `network: "host"` (the host's own network namespace). Default `false`. */
  allowHostNetwork?: boolean;
  /** Let clients keep workspaces after close (`delete_on_close: false`). Default `false`. */
  allowKeepWorkspaces?: boolean;
  /** Largest `output_limit_bytes` a client may ask for (default 16 MiB, the local runner's default). */
  maxOutputLimitBytes?: number;
  /**
   * Endpoints (origins, e.g. `https://s3.eu.example.com`) a client may name for a bucket the server's
   * secrets reach (`config.artifacts.endpoint`, `https://` mount URIs, `mounts[].endpoint`). Default none: the
   * endpoint of a secret ref comes from the secret itself, on the operator's side.
   */
  allowedEndpoints?: readonly string[];
  /** Let clients name paths of the server's host (manifest entries, provider_native mounts, path keys). */
  allowHostPaths?: boolean;
  /** Refuse config keys the backend does not know (400) instead of ignoring and listing them. */
  strictConfig?: boolean;
}

/** Backend config keys that name paths of the server's host (refused from clients unless `allowHostPaths`). */
export const HOST_PATH_CONFIG_KEYS = ["workspace_dir", "snapshot_dir", "read_roots", "root"] as const;

/** Keys the Rust hosted client puts in `config` that are the client's business, never the backend's. */
const CLIENT_KEYS = new Set(["token", "api_key", "secret", "base_url", "backend_config"]);
/** What the Rust hosted client sends in place of a secret value. */
export const REDACTED = "<redacted>";
export const DEFAULT_MAX_OUTPUT_LIMIT_BYTES = 16 * 1024 * 1024;
/** Nesting depth of a create body past which it is refused (deeper JSON overflows recursive validators). */
export const MAX_JSON_DEPTH = 32;

/** A 4xx the server answers itself (`{error:{code,message}}`). */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const refused = (key: string, value: unknown, allow: string) =>
  new HttpError(
    403,
    "config_refused",
    `config.${key} = ${JSON.stringify(value)} would weaken what this server's operator enforces; ${allow}`,
  );

type Config = Record<string, unknown>;
const isObject = (v: unknown): v is Config => v !== null && typeof v === "object" && !Array.isArray(v);

/** Depth of a JSON value, without recursion (a hostile body cannot overflow the stack here). */
export function jsonDepth(value: unknown, limit = MAX_JSON_DEPTH): number {
  let max = 0;
  const stack: Array<[unknown, number]> = [[value, 1]];
  while (stack.length) {
    const [v, d] = stack.pop()!;
    if (v === null || typeof v !== "object") continue;
    max = Math.max(max, d);
    if (max > limit) return max;
    for (const child of Object.values(v as object)) stack.push([child, d + 1]);
  }
  return max;
}

/**
 * The backend config of a create request: `backend_config` when the client nests it, else the config minus
 * the Rust client's own keys and redacted values (listed in `ignored`).
 */
export function extractBackendConfig(raw: unknown): { config: unknown; ignored: string[] } {
  if (!isObject(raw)) return { config: raw ?? null, ignored: [] };
  if ("backend_config" in raw) return { config: raw.backend_config ?? null, ignored: [] };
  const ignored: string[] = [];
  const config: Config = {};
  for (const [k, v] of Object.entries(raw)) if (!CLIENT_KEYS.has(k)) config[k] = v;
  return { config: withoutRedacted(config, "", ignored), ignored };
}

/** A copy without the keys (at any depth) whose value the Rust client redacted; their paths go in `dropped`. */
function withoutRedacted(value: Config, path: string, dropped: string[]): Config {
  const out: Config = {};
  for (const [k, v] of Object.entries(value)) {
    const p = path ? `${path}.${k}` : k;
    if (v === REDACTED) dropped.push(p);
    else out[k] = isObject(v) ? withoutRedacted(v, p, dropped) : v;
  }
  return out;
}

function origin(url: string): string | null {
  try {
    const u = new URL(url);
    return u.protocol === "http:" || u.protocol === "https:" ? u.origin : null;
  } catch {
    return null;
  }
}

/**
 * Refuses (403) what a client may not ask of this server: host paths, weakening keys, endpoints outside the
 * allow-list. `mountEndpoints` are the `mounts[].endpoint` values of the create body.
 */
export function checkClientConfig(
  policy: RunnerServerPolicy,
  config: unknown,
  manifest: RunnerManifest,
  mountEndpoints: readonly string[],
): void {
  const c = isObject(config) ? config : {};
  if (!policy.allowHostPaths) {
    const paths: string[] = [];
    if (manifest.entries.length > 0) paths.push("manifest.entries (sources are paths of the server's host)");
    if (manifest.mounts.some((m) => m.intent.kind === "provider_native"))
      paths.push("provider_native mounts (bind mounts of the server's host paths)");
    for (const k of HOST_PATH_CONFIG_KEYS) if (k in c) paths.push(`config.${k}`);
    if (paths.length)
      throw new HttpError(
        403,
        "host_paths_refused",
        `this server does not let clients name its host paths: ${paths.join(", ")} (start it with allowHostPaths to permit them)`,
      );
  }
  if ("isolation" in c && c.isolation !== "bwrap" && policy.isolation === "bwrap")
    throw refused(
      "isolation",
      c.isolation,
      "the operator enforces bubblewrap (to allow it, start the server with isolation 'none': roder-runner serve --isolation none)",
    );
  if ("bwrap_unshare_pid" in c && c.bwrap_unshare_pid !== true)
    throw refused(
      "bwrap_unshare_pid",
      c.bwrap_unshare_pid,
      "a session's commands never share the host's process namespace (only the operator's enforceConfig sets it)",
    );
  if ("network" in c && c.network === "host" && !policy.allowHostNetwork)
    throw refused(
      "network",
      c.network,
      "the host's network is the operator's choice (allowHostNetwork: true, roder-runner serve --allow-host-network)",
    );
  if ("delete_on_close" in c && c.delete_on_close !== true && !policy.allowKeepWorkspaces)
    throw refused(
      "delete_on_close",
      c.delete_on_close,
      "workspaces are deleted at close unless the operator allows keeping them (allowKeepWorkspaces: true, roder-runner serve --allow-keep-workspaces)",
    );
  const maxOut = policy.maxOutputLimitBytes ?? DEFAULT_MAX_OUTPUT_LIMIT_BYTES;
  if (typeof c.output_limit_bytes === "number" && c.output_limit_bytes > maxOut)
    throw refused(
      "output_limit_bytes",
      c.output_limit_bytes,
      `this server caps it at ${maxOut} bytes (maxOutputLimitBytes, roder-runner serve --max-output-bytes N)`,
    );
  const allowed = new Set((policy.allowedEndpoints ?? []).map(origin).filter(Boolean));
  const endpoints: Array<[string, string]> = mountEndpoints.map((e, i) => [`mounts[${i}].endpoint`, e]);
  const artifacts = c.artifacts;
  if (isObject(artifacts) && typeof artifacts.endpoint === "string")
    endpoints.push(["config.artifacts.endpoint", artifacts.endpoint]);
  for (const m of manifest.mounts)
    if (/^https?:/i.test(m.intent.uri)) endpoints.push([`manifest mount '${m.name}' uri`, m.intent.uri]);
  for (const [where, url] of endpoints) {
    const o = origin(url);
    if (o === null || !allowed.has(o))
      throw new HttpError(
        403,
        "config_refused",
        `${where} names an endpoint (${o ?? "not an http(s) URL"}) that is not on this server's allow-list: the server's bucket credentials go only to endpoints its operator allows (allowedEndpoints, roder-runner serve --allow-endpoint URL), or to the endpoint its own credential entry names`,
      );
  }
}

/**
 * Keys named as unknown by a backend's `invalid_destination_config` error (zod's unrecognized-keys issue),
 * limited to keys the config really has. Empty when the error is about something else.
 */
export function unrecognizedKeys(error: unknown, config: unknown): string[] {
  if (!InvalidDestinationConfigError.isInstance(error) || !isObject(config)) return [];
  const messages = [error.message, ...(error.issues ?? []).map((i) => i.message)].filter((m) =>
    /unrecognized key/i.test(m),
  );
  const quoted = new Set<string>();
  for (const m of messages) for (const q of m.matchAll(/["']([^"']+)["']/g)) quoted.add(q[1]!);
  return Object.keys(config).filter((k) => quoted.has(k));
}

/** A config without `keys`. */
export function withoutKeys(config: unknown, keys: readonly string[]): unknown {
  if (!isObject(config)) return config;
  return Object.fromEntries(Object.entries(config).filter(([k]) => !keys.includes(k)));
}

/** The operator's keys over the client's; the client keys whose value the operator replaced. */
export function applyEnforced(config: unknown, enforced: Config): { config: Config; pinned: string[] } {
  const c = isObject(config) ? config : {};
  const pinned = Object.keys(enforced).filter(
    (k) => k in c && JSON.stringify(c[k]) !== JSON.stringify(enforced[k]),
  );
  return { config: { ...c, ...enforced }, pinned };
}

/** A 400 listing unknown keys, for `strictConfig` servers. */
export function strictRefusal(keys: readonly string[]): RunnerError {
  return new RunnerError(
    "invalid_destination_config",
    `config keys this server's backend does not know: ${keys.join(", ")} (this server runs with strictConfig; others ignore them and list them in ignored_config_keys)`,
  );
}
