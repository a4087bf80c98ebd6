import {
  type EnvSource,
  InvalidSecretError,
  type RunnerMountKind,
  type RunnerSecretRef,
  resolveSecret,
  secretEnvName,
} from "@roder/runner-contract";
import { z } from "zod";

/** Per-kind credential fields, read from `RODER_SECRET_<ID>_<FIELD>`. */
export const S3CredentialsSchema = z.object({
  access_key_id: z.string().min(1),
  secret_access_key: z.string().min(1),
  session_token: z.string().optional(),
  region: z.string().optional(),
  endpoint: z.string().url().optional(),
});
export const R2CredentialsSchema = z.object({
  account_id: z
    .string()
    .regex(/^[0-9a-f]{32}$/i, "a 32-hex-digit Cloudflare account id")
    .optional(),
  endpoint: z.string().url().optional(),
  access_key_id: z.string().min(1),
  secret_access_key: z.string().min(1),
});
export const GcsCredentialsSchema = z.object({
  service_account_json: z
    .string()
    .refine((s) => s.trim().startsWith("{"), "must be a service-account JSON document")
    .optional(),
  hmac_access_id: z.string().optional(),
  hmac_secret: z.string().optional(),
  /** A private or test endpoint of the JSON API (`http://host:port/storage/v1/`); not secret. */
  endpoint: z.string().url().optional(),
});
export const AzureCredentialsSchema = z.object({
  account: z.string().optional(),
  key: z.string().optional(),
  sas_token: z.string().optional(),
  connection_string: z.string().optional(),
});
export const BoxCredentialsSchema = z.object({
  token_json: z
    .string()
    .refine((s) => s.trim().startsWith("{"), "must be rclone's token JSON")
    .optional(),
  access_token: z.string().optional(),
  root_folder_id: z.string().regex(/^\d+$/).optional(),
  /** OAuth token endpoint for refreshes (rclone `token_url`; rclone's default is app.box.com's); not secret. */
  token_url: z.string().url().optional(),
  /**
   * An HTTPS proxy for rclone's Box traffic (`HTTPS_PROXY` of the mount process: a corporate egress proxy, or a
   * test's intercepting proxy); treated as secret since a proxy URL may carry credentials.
   */
  https_proxy: z.string().url().optional(),
  /** A PEM file of extra CAs rclone trusts (`RCLONE_CA_CERT`), a path where rclone runs; not secret. */
  ca_cert_file: z.string().startsWith("/").optional(),
});

export type S3Credentials = z.infer<typeof S3CredentialsSchema>;
export type R2Credentials = z.infer<typeof R2CredentialsSchema>;
export type GcsCredentials = z.infer<typeof GcsCredentialsSchema>;
export type AzureCredentials = z.infer<typeof AzureCredentialsSchema>;
export type BoxCredentials = z.infer<typeof BoxCredentialsSchema>;

export type BucketCredentials =
  | { kind: "s3"; value: S3Credentials }
  | { kind: "r2"; value: R2Credentials }
  | { kind: "gcs"; value: GcsCredentials }
  | { kind: "azure_blob"; value: AzureCredentials }
  | { kind: "box_storage"; value: BoxCredentials };

const SCHEMAS = {
  s3: S3CredentialsSchema,
  r2: R2CredentialsSchema,
  gcs: GcsCredentialsSchema,
  azure_blob: AzureCredentialsSchema,
  box_storage: BoxCredentialsSchema,
} as const;

/** The env variables a kind reads for a secret ref (for docs, hints and plans). */
export function credentialVariables(
  kind: Exclude<RunnerMountKind, "provider_native">,
  ref: RunnerSecretRef,
): string[] {
  return Object.keys(SCHEMAS[kind].shape).map((f) => secretEnvName(ref.id, f));
}

/** Resolves a secret ref for a bucket kind; one-of groups (GCS, Azure, Box, R2) are checked with clear messages. */
export function resolveBucketCredentials(
  kind: Exclude<RunnerMountKind, "provider_native">,
  ref: RunnerSecretRef,
  env?: EnvSource,
): BucketCredentials {
  const value = resolveSecret(ref, SCHEMAS[kind], env) as Record<string, string | undefined>;
  const need = (ok: boolean, fields: string[]) => {
    if (!ok) {
      throw new InvalidSecretError({
        secretId: ref.id,
        variables: fields.map((f) => secretEnvName(ref.id, f)),
        reason: `set ${fields.map((f) => secretEnvName(ref.id, f)).join(" or ")}`,
      });
    }
  };
  if (kind === "r2") need(Boolean(value.account_id || value.endpoint), ["account_id", "endpoint"]);
  if (kind === "gcs")
    need(Boolean(value.service_account_json || (value.hmac_access_id && value.hmac_secret)), [
      "service_account_json",
      "hmac_access_id + hmac_secret",
    ]);
  if (kind === "azure_blob")
    need(Boolean(value.connection_string || (value.account && (value.key || value.sas_token))), [
      "connection_string",
      "account + key",
      "account + sas_token",
    ]);
  if (kind === "box_storage")
    need(Boolean(value.token_json || value.access_token), ["token_json", "access_token"]);
  return { kind, value } as BucketCredentials;
}
