import { z } from "zod";

/**
 * Zod schemas for every wire type of `roder_api::remote_runner`.
 *
 * Field names and declaration order follow the Rust structs exactly: zod builds its output object in
 * shape order, so `encode` writes keys in the order serde does. Defaults follow serde: a missing
 * `#[serde(default)]` field gets its default, but an explicit `null` is rejected; `Option` fields accept
 * a missing key or `null` and become `null`; `serde_json::Value` fields accept anything and default to
 * `null`. Unknown keys are dropped, as serde drops them.
 */

/** A `serde_json::Value` field: any JSON, `null` when missing. */
export const JsonValueSchema = z.unknown().default(null);

/** `PathBuf`: a string, written verbatim. */
export const PathSchema = z.string({ error: "expected path string" });

/** `Vec<u8>`: a JSON array of integers 0..=255 on the wire, a `Uint8Array` in memory. */
export const BytesSchema = z
  .custom<Uint8Array | number[]>(
    (v) => {
      if (v instanceof Uint8Array) return true;
      if (!Array.isArray(v)) return false;
      for (let i = 0; i < v.length; i++) {
        const n = v[i];
        if (typeof n !== "number" || !Number.isInteger(n) || n < 0 || n > 255) return false;
      }
      return true;
    },
    { error: "invalid type: expected a sequence of u8 (integers 0..=255)" },
  )
  .transform((v) => (v instanceof Uint8Array ? v : Uint8Array.from(v)));

export const RunnerMountCapabilitiesSchema = z.object({
  s3: z.boolean().default(false),
  gcs: z.boolean().default(false),
  r2: z.boolean().default(false),
  azure_blob: z.boolean().default(false),
  box_storage: z.boolean().default(false),
  provider_native: z.boolean().default(false),
});
export type RunnerMountCapabilities = z.infer<typeof RunnerMountCapabilitiesSchema>;

const noMounts = (): RunnerMountCapabilities => ({
  s3: false,
  gcs: false,
  r2: false,
  azure_blob: false,
  box_storage: false,
  provider_native: false,
});

export const RunnerCapabilitiesSchema = z.object({
  command_exec: z.boolean(),
  file_read: z.boolean(),
  file_write: z.boolean(),
  port_preview: z.boolean(),
  snapshots: z.boolean(),
  cancellation: z.boolean(),
  artifact_export: z.boolean().default(false),
  mounts: RunnerMountCapabilitiesSchema.default(noMounts),
});
export type RunnerCapabilities = z.infer<typeof RunnerCapabilitiesSchema>;

export const RunnerMountKindSchema = z.enum([
  "s3",
  "gcs",
  "r2",
  "azure_blob",
  "box_storage",
  "provider_native",
]);
export type RunnerMountKind = z.infer<typeof RunnerMountKindSchema>;

export const RunnerSecretRefSchema = z.object({ id: z.string() });
export type RunnerSecretRef = z.infer<typeof RunnerSecretRefSchema>;

export const RunnerMountIntentSchema = z.object({
  kind: RunnerMountKindSchema,
  uri: z.string(),
  /** The only `skip_serializing_if` field: omitted when absent (an input `null` drops the key). */
  credentials: RunnerSecretRefSchema.nullable()
    .transform((v) => v ?? undefined)
    .optional(),
});
export type RunnerMountIntent = z.infer<typeof RunnerMountIntentSchema>;

export const RunnerMountSchema = z.object({
  name: z.string(),
  path: PathSchema,
  read_only: z.boolean(),
  intent: RunnerMountIntentSchema.default(() => ({ kind: "provider_native" as const, uri: "" })),
});
export type RunnerMount = z.infer<typeof RunnerMountSchema>;

export const RunnerManifestEntrySchema = z.object({
  source: PathSchema,
  target: PathSchema,
  writable: z.boolean(),
});
export type RunnerManifestEntry = z.infer<typeof RunnerManifestEntrySchema>;

export const RunnerManifestSchema = z.object({
  entries: z.array(RunnerManifestEntrySchema).default(() => []),
  mounts: z.array(RunnerMountSchema).default(() => []),
});
export type RunnerManifest = z.infer<typeof RunnerManifestSchema>;

export const RunnerDestinationSchema = z.object({
  id: z.string(),
  provider_id: z.string(),
  config: JsonValueSchema,
  default_manifest: RunnerManifestSchema.default(() => ({ entries: [], mounts: [] })),
});
export type RunnerDestination = z.infer<typeof RunnerDestinationSchema>;

export const RunnerSnapshotRefSchema = z.object({
  provider_id: z.string(),
  snapshot_id: z.string(),
  metadata: JsonValueSchema,
});
export type RunnerSnapshotRef = z.infer<typeof RunnerSnapshotRefSchema>;

export const RunnerSessionStateSchema = z.object({
  provider_id: z.string(),
  session_id: z.string(),
  destination_id: z.string(),
  snapshot: RunnerSnapshotRefSchema.nullish().transform((v) => v ?? null),
  metadata: JsonValueSchema,
});
export type RunnerSessionState = z.infer<typeof RunnerSessionStateSchema>;

export const ThreadRunnerBindingSchema = z.object({
  destination: RunnerDestinationSchema,
  workspace: PathSchema,
  read_roots: z.array(PathSchema).default(() => []),
});
export type ThreadRunnerBinding = z.infer<typeof ThreadRunnerBindingSchema>;

export const EnvPairSchema = z.tuple([z.string(), z.string()]);

export const RunnerCommandRequestSchema = z.object({
  command_id: z.string(),
  program: z.string(),
  args: z.array(z.string()).default(() => []),
  cwd: PathSchema.nullish().transform((v) => v ?? null),
  env: z.array(EnvPairSchema).default(() => []),
  /** Newer Rust contract: runner-side timeout in milliseconds. Omitted from the wire when absent. */
  timeout_ms: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
});
export type RunnerCommandRequest = z.infer<typeof RunnerCommandRequestSchema>;
/**
 * What `runCommand` / `startCommand` take: `command_id` is generated when left out (see `parseCommandInput`),
 * `args`, `cwd` and `env` default. The wire type (`RunnerCommandRequest`) still requires `command_id`.
 */
export type RunnerCommandRequestInput = Omit<z.input<typeof RunnerCommandRequestSchema>, "command_id"> & {
  command_id?: string;
};

export const RunnerCommandResultSchema = z.object({
  command_id: z.string(),
  exit_code: z
    .number()
    .int()
    .min(-2147483648)
    .max(2147483647)
    .nullish()
    .transform((v) => v ?? null),
  stdout: z.string(),
  stderr: z.string(),
});
export type RunnerCommandResult = z.infer<typeof RunnerCommandResultSchema>;

export const RunnerFileReadRequestSchema = z.object({ path: PathSchema });
export type RunnerFileReadRequest = z.infer<typeof RunnerFileReadRequestSchema>;

export const RunnerFileReadResultSchema = z.object({ path: PathSchema, contents: BytesSchema });
export type RunnerFileReadResult = z.infer<typeof RunnerFileReadResultSchema>;

export const RunnerFileWriteRequestSchema = z.object({ path: PathSchema, contents: BytesSchema });
export type RunnerFileWriteRequest = z.infer<typeof RunnerFileWriteRequestSchema>;

export const RunnerPortRequestSchema = z.object({
  port: z.number().int().min(0).max(65535),
  label: z
    .string()
    .nullish()
    .transform((v) => v ?? null),
});
export type RunnerPortRequest = z.infer<typeof RunnerPortRequestSchema>;

export const RunnerPortResultSchema = z.object({
  port: z.number().int().min(0).max(65535),
  url: z
    .string()
    .nullish()
    .transform((v) => v ?? null),
});
export type RunnerPortResult = z.infer<typeof RunnerPortResultSchema>;

export const RunnerArtifactExportRequestSchema = z.object({
  path: PathSchema,
  recursive: z.boolean().default(false),
});
export type RunnerArtifactExportRequest = z.infer<typeof RunnerArtifactExportRequestSchema>;

export const RunnerArtifactExportResultSchema = z.object({
  path: PathSchema,
  artifact_id: z.string(),
  url: z
    .string()
    .nullish()
    .transform((v) => v ?? null),
  metadata: JsonValueSchema,
});
export type RunnerArtifactExportResult = z.infer<typeof RunnerArtifactExportResultSchema>;

/** Every wire schema, keyed by the Rust type name. */
export const wireSchemas = {
  RunnerCapabilities: RunnerCapabilitiesSchema,
  RunnerMountCapabilities: RunnerMountCapabilitiesSchema,
  RunnerDestination: RunnerDestinationSchema,
  RunnerManifest: RunnerManifestSchema,
  RunnerManifestEntry: RunnerManifestEntrySchema,
  RunnerMount: RunnerMountSchema,
  RunnerMountIntent: RunnerMountIntentSchema,
  RunnerMountKind: RunnerMountKindSchema,
  RunnerSecretRef: RunnerSecretRefSchema,
  RunnerSnapshotRef: RunnerSnapshotRefSchema,
  RunnerSessionState: RunnerSessionStateSchema,
  ThreadRunnerBinding: ThreadRunnerBindingSchema,
  RunnerCommandRequest: RunnerCommandRequestSchema,
  RunnerCommandResult: RunnerCommandResultSchema,
  RunnerFileReadRequest: RunnerFileReadRequestSchema,
  RunnerFileReadResult: RunnerFileReadResultSchema,
  RunnerFileWriteRequest: RunnerFileWriteRequestSchema,
  RunnerPortRequest: RunnerPortRequestSchema,
  RunnerPortResult: RunnerPortResultSchema,
  RunnerArtifactExportRequest: RunnerArtifactExportRequestSchema,
  RunnerArtifactExportResult: RunnerArtifactExportResultSchema,
} as const;
export type WireTypeName = keyof typeof wireSchemas;
