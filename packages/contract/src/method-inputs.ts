import type { z } from "zod";
import {
  type RunnerArtifactExportRequest,
  RunnerArtifactExportRequestSchema,
  type RunnerCommandRequest,
  type RunnerCommandRequestInput,
  RunnerCommandRequestSchema,
  type RunnerDestination,
  RunnerDestinationSchema,
  type RunnerFileWriteRequest,
  RunnerFileWriteRequestSchema,
  type RunnerPortRequest,
  RunnerPortRequestSchema,
} from "./schemas.js";

/**
 * What the methods take: the schemas' input types, so fields the wire format defaults may be left out. The
 * wire types and their codecs stay exactly Rust's; these only fill the defaults before a value is used.
 */

/** `createSession` / `validateDestination` input: `id` is generated and `provider_id` is the provider's own when left out. */
export type RunnerDestinationInput = Omit<z.input<typeof RunnerDestinationSchema>, "id" | "provider_id"> & {
  id?: string;
  provider_id?: string;
};

/** `writeFile` input: text (written as UTF-8) or bytes. */
export interface RunnerFileWriteInput {
  path: string;
  contents: string | Uint8Array | readonly number[];
}

/** `exposePort` input: `label` defaults to `null`. */
export type RunnerPortRequestInput = z.input<typeof RunnerPortRequestSchema>;

/** `exportArtifact` input: `recursive` defaults to `false`. */
export type RunnerArtifactExportRequestInput = z.input<typeof RunnerArtifactExportRequestSchema>;

const uuid = (): string => globalThis.crypto.randomUUID();

/** A destination with its defaults: a generated `id` (`dest-<uuid>`) and `provider_id` = `providerId`. */
export function parseDestinationInput(input: RunnerDestinationInput, providerId: string): RunnerDestination {
  const raw = (input ?? {}) as Record<string, unknown>;
  return RunnerDestinationSchema.parse({
    ...raw,
    id: raw.id === undefined ? `dest-${uuid()}` : raw.id,
    provider_id: raw.provider_id === undefined ? providerId : raw.provider_id,
  });
}

/** A command request with its defaults: a generated `command_id` (`cmd-<uuid>`) when left out. */
export function parseCommandInput(input: RunnerCommandRequestInput): RunnerCommandRequest {
  const raw = (input ?? {}) as Record<string, unknown>;
  return RunnerCommandRequestSchema.parse(
    raw.command_id === undefined ? { ...raw, command_id: `cmd-${uuid()}` } : raw,
  );
}

/** A file write with its contents as bytes (a string is encoded as UTF-8). */
export function parseFileWriteInput(input: RunnerFileWriteInput): RunnerFileWriteRequest {
  const raw = (input ?? {}) as { path?: unknown; contents?: unknown };
  return RunnerFileWriteRequestSchema.parse(
    typeof raw.contents === "string" ? { ...raw, contents: new TextEncoder().encode(raw.contents) } : raw,
  );
}

/** A port request with `label` defaulted to `null`. */
export function parsePortInput(input: RunnerPortRequestInput): RunnerPortRequest {
  return RunnerPortRequestSchema.parse(input);
}

/** An artifact export request with `recursive` defaulted to `false`. */
export function parseArtifactExportInput(
  input: RunnerArtifactExportRequestInput,
): RunnerArtifactExportRequest {
  return RunnerArtifactExportRequestSchema.parse(input);
}
