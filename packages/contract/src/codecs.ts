import type { z } from "zod";
import { WireDecodeError } from "./errors/wire-decode-error.js";
import { type WireTypeName, wireSchemas } from "./schemas.js";

export interface Codec<T> {
  /** Validates a JSON value (as from `JSON.parse`) as this wire type; throws `WireDecodeError` naming the field path. */
  parse(value: unknown): T;
  /** Parses JSON text as `serde_json::from_str` would; throws `WireDecodeError`. */
  decode(text: string): T;
  /** Exactly what `serde_json::to_string` writes. */
  encode(value: T): string;
  /** Exactly what `serde_json::to_string_pretty` writes. */
  encodePretty(value: T): string;
  /** The value as plain JSON (byte contents as number arrays), keys in Rust declaration order. */
  toJSON(value: T): unknown;
}

type Codecs = { [K in WireTypeName]: Codec<z.infer<(typeof wireSchemas)[K]>> };

/**
 * Finds a `\uXXXX` escape of a lone UTF-16 surrogate inside a JSON string literal: serde_json rejects those,
 * `JSON.parse` accepts them.
 */
export function findLoneSurrogateEscape(text: string): number {
  if (!text.includes("\\u")) return -1;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (!inString) {
      if (c === 0x22) inString = true;
      continue;
    }
    if (c === 0x22) {
      inString = false;
    } else if (c === 0x5c) {
      const next = text[i + 1];
      if (next === "u") {
        const code = Number.parseInt(text.slice(i + 2, i + 6), 16);
        if (code >= 0xd800 && code <= 0xdbff) {
          const low =
            text.slice(i + 6, i + 8) === "\\u" ? Number.parseInt(text.slice(i + 8, i + 12), 16) : Number.NaN;
          if (!(low >= 0xdc00 && low <= 0xdfff)) return i;
          i += 11;
          continue;
        }
        if (code >= 0xdc00 && code <= 0xdfff) return i;
        i += 5;
      } else {
        i += 1;
      }
    }
  }
  return -1;
}

function describeType(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "a sequence";
  if (typeof value === "object") return "a map";
  if (typeof value === "string") return `string ${JSON.stringify(value)}`;
  if (typeof value === "number")
    return Number.isInteger(value) ? `integer \`${value}\`` : `floating point \`${value}\``;
  return `${typeof value} \`${String(value)}\``;
}

function valueAt(root: unknown, path: ReadonlyArray<PropertyKey>): unknown {
  let cur: unknown = root;
  for (const key of path) {
    if (cur === null || typeof cur !== "object") return undefined;
    cur = (cur as Record<PropertyKey, unknown>)[key as string];
  }
  return cur;
}

/**
 * Finds a number token with a fraction or exponent outside string literals. serde_json parses `1.0` and `1e0`
 * as floats, which integer fields reject; `JSON.parse` cannot tell them from integers.
 */
export function findFloatToken(text: string): string | null {
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (inString) {
      if (c === "\\") i++;
      else if (c === '"') inString = false;
      continue;
    }
    if (c === '"') {
      inString = true;
      continue;
    }
    if (c === "-" || (c >= "0" && c <= "9")) {
      let j = i + 1;
      while (j < text.length && /[0-9.eE+-]/.test(text[j]!)) j++;
      const token = text.slice(i, j);
      if (/[.eE]/.test(token)) return token;
      i = j - 1;
    }
  }
  return null;
}

/** Types whose every number is an integer (no `serde_json::Value` field): floats are refused in their text. */
const INTEGER_ONLY = new Set([
  "RunnerCommandResult",
  "RunnerFileReadResult",
  "RunnerFileWriteRequest",
  "RunnerPortRequest",
  "RunnerPortResult",
  "RunnerCommandRequest",
]);

function toWireError(typeName: string, error: z.ZodError, input: unknown): WireDecodeError {
  const issue = error.issues[0];
  const path = (issue?.path ?? []).filter((p): p is string | number => typeof p !== "symbol");
  const at = valueAt(input, path);
  if (issue?.code === "invalid_value" && "values" in issue && at !== undefined && typeof at !== "string") {
    // serde's unit-enum visitor: a one-key map is the externally tagged form (its payload must be unit);
    // anything else that is not a string is a syntax error ("expected value").
    const oneKeyMap =
      at !== null && typeof at === "object" && !Array.isArray(at) && Object.keys(at).length === 1;
    return new WireDecodeError(
      {
        typeName,
        path,
        message: oneKeyMap
          ? `invalid type: ${describeType(Object.values(at)[0])}, expected unit`
          : "expected value",
        category: oneKeyMap ? "data" : "syntax",
      },
      { cause: error },
    );
  }
  let message = issue?.message ?? "invalid value";
  if (issue) {
    if (at === undefined && path.length > 0 && issue.code === "invalid_type") {
      message = `missing field \`${String(path[path.length - 1])}\``;
    } else if (issue.code === "invalid_type") {
      message = `invalid type: ${describeType(at)}, expected ${issue.expected}`;
    } else if (issue.code === "invalid_value" && "values" in issue) {
      message = `unknown variant ${typeof at === "string" ? `\`${at}\`` : describeType(at)}, expected one of ${(
        issue.values as unknown[]
      )
        .map((v) => `\`${String(v)}\``)
        .join(", ")}`;
    } else if (issue.code === "too_big" || issue.code === "too_small") {
      message = `invalid value: ${describeType(at)}, ${issue.message}`;
    }
  }
  return new WireDecodeError({ typeName, path, message, category: "data" }, { cause: error });
}

/** Rewrites a value into plain JSON: Uint8Array → number array (kept as is for the fast encoder). */
function plain(value: unknown, bytes?: (u8: Uint8Array) => unknown): unknown {
  if (value instanceof Uint8Array) return bytes ? bytes(value) : Array.from(value);
  if (Array.isArray(value)) return value.map((v) => plain(v, bytes));
  if (value !== null && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) if (v !== undefined) out[k] = plain(v, bytes);
    return out;
  }
  return value;
}

function makeCodec<S extends z.ZodType>(typeName: string, schema: S): Codec<z.infer<S>> {
  const parse = (value: unknown): z.infer<S> => {
    const result = schema.safeParse(value);
    if (!result.success) throw toWireError(typeName, result.error, value);
    return result.data as z.infer<S>;
  };
  // Re-parse before writing so keys come out in Rust declaration order and defaults are filled, whatever
  // object the caller built.
  const normalise = (value: z.infer<S>): z.infer<S> => parse(value);
  return {
    parse,
    decode(text: string) {
      if (typeof text !== "string")
        throw new WireDecodeError({ typeName, message: "expected JSON text", category: "syntax" });
      if (text.trim() === "")
        throw new WireDecodeError({ typeName, message: "EOF while parsing a value", category: "eof" });
      const lone = findLoneSurrogateEscape(text);
      if (lone >= 0) {
        throw new WireDecodeError({
          typeName,
          message: `lone leading surrogate in hex escape at offset ${lone}`,
          category: "syntax",
        });
      }
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch (error) {
        const msg = (error as Error).message;
        const eof = /end of (JSON )?input|Unterminated/i.test(msg);
        throw new WireDecodeError(
          { typeName, message: msg, category: eof ? "eof" : "syntax" },
          { cause: error },
        );
      }
      if (INTEGER_ONLY.has(typeName)) {
        const float = findFloatToken(text);
        if (float !== null) {
          throw new WireDecodeError({
            typeName,
            message: `invalid type: floating point \`${float}\`, expected an integer`,
          });
        }
      }
      return parse(value);
    },
    encode(value) {
      const nonce = `\u0000b${Math.random().toString(36).slice(2)}\u0000`;
      const chunks: Uint8Array[] = [];
      const tree = plain(normalise(value), (u8) => {
        chunks.push(u8);
        return `${nonce}${chunks.length - 1}`;
      });
      let text = JSON.stringify(tree);
      if (chunks.length > 0) {
        const escaped = JSON.stringify(nonce).slice(1, -1);
        text = text.replace(new RegExp(`"${escapeRegExp(escaped)}(\\d+)"`, "g"), (_m, i: string) => {
          const u8 = chunks[Number(i)]!;
          return `[${u8.join(",")}]`;
        });
      }
      return text;
    },
    encodePretty(value) {
      return JSON.stringify(plain(normalise(value)), null, 2);
    },
    toJSON(value) {
      return plain(normalise(value));
    },
  };
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** One codec per Rust wire type, keyed by the Rust type name. */
export const codecs: Codecs = Object.fromEntries(
  Object.entries(wireSchemas).map(([name, schema]) => [name, makeCodec(name, schema as z.ZodType)]),
) as unknown as Codecs;
