import type { z } from "zod";
import { InvalidSecretError } from "./errors/invalid-secret-error.js";
import { MissingSecretError } from "./errors/missing-secret-error.js";
import { SecretInConfigError } from "./errors/secret-in-config-error.js";
import type { RunnerSecretRef } from "./schemas.js";

/** Where secrets come from; defaults to `process.env`. */
export type EnvSource = Readonly<Record<string, string | undefined>>;

/** The one prefix of every secret variable: `RODER_SECRET_<ID>_<FIELD>`. */
export const SECRET_ENV_PREFIX = "RODER_SECRET_";

const envPart = (s: string) => s.toUpperCase().replace(/[^A-Z0-9]/g, "_");

/** `r2-readonly` + `access_key_id` → `RODER_SECRET_R2_READONLY_ACCESS_KEY_ID`. */
export function secretEnvName(secretId: string, field: string): string {
  return `${SECRET_ENV_PREFIX}${envPart(secretId)}_${envPart(field)}`;
}

function defaultEnv(): EnvSource {
  return typeof process === "undefined" ? {} : process.env;
}

/**
 * Reads the fields of `schema` (a z.object whose keys are snake_case field names) from the variables named by
 * `secretEnvName(ref.id, field)`. Missing required fields → `MissingSecretError` naming every variable
 * expected; malformed → `InvalidSecretError` naming the variables. Never prints a value.
 */
export function resolveSecret<S extends z.ZodObject>(
  ref: RunnerSecretRef,
  schema: S,
  env: EnvSource = defaultEnv(),
): z.infer<S> {
  if (!ref || typeof ref.id !== "string" || ref.id.trim() === "") {
    throw new InvalidSecretError({
      secretId: String(ref?.id ?? ""),
      variables: [],
      reason: "a secret ref needs a non-empty id",
    });
  }
  const raw: Record<string, string> = {};
  const names: Record<string, string> = {};
  for (const field of Object.keys(schema.shape)) {
    const name = secretEnvName(ref.id, field);
    names[field] = name;
    const value = env[name];
    if (value !== undefined && value !== "") raw[field] = value;
  }
  const result = schema.safeParse(raw);
  if (result.success) return result.data as z.infer<S>;
  const missing = result.error.issues
    .filter((i) => i.path.length > 0 && raw[String(i.path[0])] === undefined)
    .map((i) => names[String(i.path[0])]!)
    .filter((v, i, a) => a.indexOf(v) === i);
  if (missing.length > 0) {
    const all = Object.values(names);
    throw new MissingSecretError({
      secretId: ref.id,
      variables: missing,
      message: `secret '${ref.id}' is missing: set ${missing.join(", ")} (this secret reads ${all.join(", ")})`,
    });
  }
  // Only paths and zod's messages: zod 4 messages do not include the received value.
  const bad = result.error.issues.map((i) => names[String(i.path[0])] ?? String(i.path[0]));
  throw new InvalidSecretError({
    secretId: ref.id,
    variables: [...new Set(bad)],
    reason: result.error.issues
      .map((i) => `${names[String(i.path[0])] ?? i.path.join(".")}: ${safeIssueMessage(i)}`)
      .join("; "),
  });
}

function safeIssueMessage(issue: z.core.$ZodIssue): string {
  // Never echo input: keep only the issue code and the expectation.
  if (issue.code === "invalid_type") return `expected ${issue.expected}`;
  if (issue.code === "too_small" || issue.code === "too_big") return issue.code.replace("_", " ");
  if (issue.code === "invalid_format") return `invalid ${issue.format}`;
  if (issue.code === "custom") return "does not have the expected form";
  return issue.code.replace(/_/g, " ");
}

const SECRET_KEY =
  /(^|_|-)(token|secret|password|passwd|pwd|api_?key|apikey|access_?key(_id)?|secret_?access_?key|private_?key|client_?secret|connection_?string|sas(_?token)?|auth(orization)?|bearer|session_?token|account_?key|credentials?)($|_|-)/i;
const CAMEL_SECRET_KEY =
  /(token|secret|password|apiKey|accessKey|privateKey|connectionString|sasToken|accountKey|authorization)$/;
const ENV_NAME_KEY = /(_env|Env|_env_var|EnvVar|_variable)$/;

function looksSecretValue(value: string): boolean {
  if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(value)) return true;
  if (/\b(AKIA|ASIA)[A-Z0-9]{16}\b/.test(value)) return true;
  if (/[?&](sig|X-Amz-Signature|X-Goog-Signature|token|access_token)=/i.test(value)) return true;
  if (/^[a-z][a-z0-9+.-]*:\/\/[^/\s:@]+:[^/\s@]+@/i.test(value)) return true; // userinfo password
  if (/AccountKey=|SharedAccessSignature=/i.test(value)) return true;
  if (/^(sk|pk|e2b|fo1|ghp|gho|xox[abp])_[A-Za-z0-9_-]{16,}$/.test(value)) return true;
  if (/^eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/.test(value)) return true; // JWT
  return false;
}

const isSecretRef = (v: unknown) =>
  v !== null &&
  typeof v === "object" &&
  !Array.isArray(v) &&
  Object.keys(v).length === 1 &&
  typeof (v as { id?: unknown }).id === "string";

/**
 * Throws `SecretInConfigError` when a destination config holds secret-looking keys or values. The config is
 * persisted with the thread, so credentials must arrive as env secret refs (`{ "id": "…" }`). Keys that name
 * an env variable (`token_env`, `tokenEnv`) and secret refs are allowed. The error names paths, never values.
 */
export function assertNoSecretsInConfig(
  config: unknown,
  options: { allowKeys?: readonly string[]; hint?: string } = {},
): void {
  const allow = new Set(options.allowKeys ?? []);
  const found: string[] = [];
  const walk = (value: unknown, path: string) => {
    if (typeof value === "string") {
      if (looksSecretValue(value)) found.push(path || "(root)");
      return;
    }
    if (Array.isArray(value)) {
      for (const [i, v] of value.entries()) walk(v, `${path}[${i}]`);
      return;
    }
    if (value === null || typeof value !== "object") return;
    for (const [key, v] of Object.entries(value)) {
      const p = path ? `${path}.${key}` : key;
      if (allow.has(key) || ENV_NAME_KEY.test(key)) continue;
      if (isSecretRef(v)) continue;
      if (
        (SECRET_KEY.test(key) || CAMEL_SECRET_KEY.test(key)) &&
        v !== null &&
        v !== undefined &&
        v !== false &&
        v !== ""
      ) {
        found.push(p);
        continue;
      }
      walk(v, p);
    }
  };
  walk(config, "");
  if (found.length > 0)
    throw new SecretInConfigError({ paths: found, ...(options.hint ? { hint: options.hint } : {}) });
}

/** Replaces every occurrence of each secret value (of 4 characters or more) in `text` with `***`. */
export function redactSecrets(text: string, secrets: Iterable<string>): string {
  let out = text;
  const list = [...secrets]
    .filter((s) => typeof s === "string" && s.length >= 4)
    .sort((a, b) => b.length - a.length);
  for (const secret of list) out = out.split(secret).join("***");
  return out;
}

/** Every value of a `RODER_SECRET_*` variable in `env`, for redaction. */
export function secretValuesFromEnv(env: EnvSource = defaultEnv()): string[] {
  return Object.entries(env)
    .filter(([k, v]) => k.startsWith(SECRET_ENV_PREFIX) && typeof v === "string" && v.length > 0)
    .map(([, v]) => v as string);
}

/**
 * A store of secrets other than the environment (Vault, a cloud secret manager, E2B or Modal secrets): given a
 * secret ref, the fields of that secret (`{ access_key_id, secret_access_key }` for an S3 ref). A field it does
 * not know is left out; the environment (`RODER_SECRET_<ID>_<FIELD>`) still fills what the resolver leaves.
 */
export type SecretResolver = (ref: RunnerSecretRef) => Promise<Readonly<Record<string, string | undefined>>>;

/** Every secret ref (`{ "id": "…" }`) in a config, manifest or mount list, each id once. */
export function secretRefsIn(value: unknown): RunnerSecretRef[] {
  const found = new Map<string, RunnerSecretRef>();
  const walk = (v: unknown, depth: number) => {
    if (depth > 64 || v === null || typeof v !== "object") return;
    if (isSecretRef(v)) {
      const ref = v as RunnerSecretRef;
      if (!found.has(ref.id)) found.set(ref.id, { id: ref.id });
      return;
    }
    for (const child of Array.isArray(v) ? v : Object.values(v)) walk(child, depth + 1);
  };
  walk(value, 0);
  return [...found.values()];
}

/**
 * Asks `resolver` for each ref's fields and returns them as the variables `resolveSecret` reads
 * (`RODER_SECRET_<ID>_<FIELD>`), to lay over the environment. A resolver that fails is a `MissingSecretError`
 * naming the secret (its message is kept, as the resolver is the caller's code; values it returned never are).
 */
export async function secretsAsEnv(
  refs: readonly RunnerSecretRef[],
  resolver: SecretResolver | undefined,
): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  if (!resolver) return out;
  for (const ref of refs) {
    let fields: Readonly<Record<string, string | undefined>>;
    try {
      fields = await resolver({ id: ref.id });
    } catch (error) {
      throw new MissingSecretError(
        {
          secretId: ref.id,
          variables: [],
          message: `secret '${ref.id}': the secret resolver failed: ${String((error as Error)?.message ?? error).slice(0, 300)}`,
        },
        { cause: error },
      );
    }
    if (fields === null || typeof fields !== "object")
      throw new InvalidSecretError({
        secretId: ref.id,
        variables: [],
        reason: "the secret resolver must answer an object of fields",
      });
    for (const [field, value] of Object.entries(fields))
      if (typeof value === "string" && value !== "") out[secretEnvName(ref.id, field)] = value;
  }
  return out;
}

/**
 * A provider's environment with a resolver's secrets laid over it: `env()` is what `resolveSecret` reads;
 * `prime(…)` asks the resolver for every secret ref found in what it is given (a destination, a state's config
 * and mounts) and keeps the answers in memory (replaced at the next prime of the same ref).
 */
export function secretEnvironment(base: () => EnvSource, resolver: SecretResolver | undefined) {
  const resolved: Record<string, string> = {};
  return {
    env: (): EnvSource => (Object.keys(resolved).length ? { ...base(), ...resolved } : base()),
    async prime(...sources: unknown[]): Promise<void> {
      if (resolver) Object.assign(resolved, await secretsAsEnv(secretRefsIn(sources), resolver));
    },
  };
}
