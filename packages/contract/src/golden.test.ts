import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { type Codec, codecs } from "./codecs.js";
import { WireDecodeError } from "./errors/wire-decode-error.js";
import type { WireTypeName } from "./schemas.js";

// The fixtures are read in place, from ../shared beside the repository (never copied).
const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
const goldenDir = resolve(repoRoot, "../shared/fixtures/rust-golden");

/**
 * The only fixtures left out, each allowed by issue 2:
 * - serde quirks no producer emits: structs given as JSON arrays (`sequence_form`, `empty_array`) and the
 *   externally tagged map form of a unit enum (`{"s3": null}`);
 * - duplicate-key detection, which `JSON.parse` cannot give (`duplicate_field`; the float cases
 *   `exit_code_float`, `port_exponent`, … are NOT skipped: the codec scans number tokens in the text);
 * - float formatting inside `config` (`config_numbers`, `config_number_normalization`): serde writes `1.0`,
 *   `1e+16` and exact u64 values, JavaScript numbers cannot carry that distinction.
 */
const SKIPPED = new Set([
  "sequence_form",
  "empty_array",
  "duplicate_field",
  "config_numbers",
  "config_number_normalization",
]);
const isEnumMapForm = (_type: string, c: string) =>
  c === "map_form_unit_variant" || c === "kind_as_externally_tagged_map";

interface Fixture {
  kind: "serialize" | "accept" | "reject";
  type: WireTypeName;
  case: string;
  file: string;
  [key: string]: unknown;
}

function collect(): Fixture[] {
  const out: Fixture[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir).sort()) {
      const full = join(dir, name);
      if (statSync(full).isDirectory()) walk(full);
      else if (name.endsWith(".json"))
        out.push({ ...JSON.parse(readFileSync(full, "utf8")), file: full.slice(goldenDir.length + 1) });
    }
  };
  walk(goldenDir);
  return out;
}

const fixtures = collect();
const skipped = (f: Fixture) => SKIPPED.has(f.case) || isEnumMapForm(f.type, f.case);

describe("rust-golden fixtures", () => {
  it("are found in ../shared/fixtures/rust-golden and cover every wire type", () => {
    expect(fixtures.length).toBeGreaterThan(200);
    expect(new Set(fixtures.map((f) => f.type)).size).toBe(21);
    // Only the documented skips: a new fixture kind cannot silently disappear.
    expect(fixtures.filter(skipped).length).toBeLessThanOrEqual(16);
  });

  for (const f of fixtures) {
    const run = skipped(f) ? it.skip : it;
    run(`${f.kind} ${f.file}`, () => {
      const codec = codecs[f.type] as unknown as Codec<unknown>;
      expect(codec, `codec for ${f.type}`).toBeDefined();
      if (f.kind === "serialize") {
        const fromValue = codec.parse(f.value);
        expect(codec.encode(fromValue)).toBe(f.compact);
        expect(codec.encodePretty(fromValue)).toBe(f.pretty);
        expect(codec.encode(codec.decode(f.compact as string))).toBe(f.compact);
        expect(codec.encode(codec.decode(f.pretty as string))).toBe(f.compact);
      } else if (f.kind === "accept") {
        const decoded = codec.decode(f.input_text as string);
        expect(codec.encode(decoded)).toBe(f.canonical_compact);
        expect(codec.encodePretty(decoded)).toBe(f.canonical_pretty);
        // The canonical form is a fixed point.
        expect(codec.encode(codec.decode(f.canonical_compact as string))).toBe(f.canonical_compact);
      } else {
        let thrown: unknown;
        try {
          codec.decode(f.input_text as string);
        } catch (error) {
          thrown = error;
        }
        expect(WireDecodeError.isInstance(thrown), `expected rejection: ${f.error}`).toBe(true);
        const err = thrown as WireDecodeError;
        expect(err.typeName).toBe(f.type);
        // serde's "data" errors are ours too; syntax/eof come from the JSON layer.
        if (f.error_category === "data") expect(err.category).toBe("data");
        else expect(["syntax", "eof"]).toContain(err.category);
      }
    });
  }
});
