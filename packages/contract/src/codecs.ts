// STUB: signatures fixed; the implementation is being written.
import type { z } from "zod";
import { type WireTypeName, wireSchemas } from "./schemas.js";

export interface Codec<T> {
  /** Validates a JSON value (as from `JSON.parse`) as this wire type; throws `WireDecodeError` naming the field path. */
  parse(value: unknown): T;
  /** Parses JSON text as serde_json::from_str would; throws `WireDecodeError`. */
  decode(text: string): T;
  /** Exactly what `serde_json::to_string` writes. */
  encode(value: T): string;
  /** Exactly what `serde_json::to_string_pretty` writes. */
  encodePretty(value: T): string;
  /** The value as plain JSON (contents as number arrays), ready for JSON.stringify. */
  toJSON(value: T): unknown;
}

type Codecs = { [K in WireTypeName]: Codec<z.infer<(typeof wireSchemas)[K]>> };

export const codecs: Codecs = {} as Codecs;
void wireSchemas;
