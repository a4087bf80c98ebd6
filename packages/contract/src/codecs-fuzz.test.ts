import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type Codec, codecs } from "./codecs.js";
import { WireDecodeError } from "./errors/wire-decode-error.js";
import type { WireTypeName } from "./schemas.js";

// Hostile input for every codec: random JSON, random text, and mutations of the Rust-produced fixtures (read in
// place from ../shared). Each decode gives a value or a WireDecodeError — never another error, never a hang —
// and every value it gives is a fixed point of encode/decode.
const goldenDir = resolve(dirname(fileURLToPath(import.meta.url)), "../../../../shared/fixtures/rust-golden");
const SEED = 20261126;

const seeds = new Map<WireTypeName, unknown[]>();
const walk = (dir: string) => {
  for (const name of readdirSync(dir).sort()) {
    const full = join(dir, name);
    if (statSync(full).isDirectory()) walk(full);
    else if (name.endsWith(".json")) {
      const f = JSON.parse(readFileSync(full, "utf8")) as {
        kind: string;
        type: WireTypeName;
        compact?: string;
        canonical_compact?: string;
      };
      const text = f.kind === "serialize" ? f.compact : f.kind === "accept" ? f.canonical_compact : undefined;
      if (!text) continue;
      const list = seeds.get(f.type) ?? [];
      list.push(JSON.parse(text));
      seeds.set(f.type, list);
    }
  }
};
walk(goldenDir);
const types = Object.keys(codecs) as WireTypeName[];

let cases = 0;
function check(codec: Codec<unknown>, text: string): void {
  cases++;
  let value: unknown;
  try {
    value = codec.decode(text);
  } catch (error) {
    expect(WireDecodeError.isInstance(error), `${(error as Error)?.name}: ${(error as Error)?.message}`).toBe(
      true,
    );
    expect((error as Error).message.length).toBeLessThan(4096);
    return;
  }
  const once = codec.encode(value);
  expect(codec.encode(codec.decode(once))).toBe(once);
  expect(codec.encode(codec.decode(codec.encodePretty(value)))).toBe(once);
}

/** Replaces, drops or adds one field somewhere in a JSON value. */
const mutation = fc.record({
  pick: fc.nat(),
  op: fc.constantFrom("replace", "drop", "add", "wrap"),
  key: fc.string({ maxLength: 12 }),
  replacement: fc.jsonValue({ maxDepth: 2 }),
});
function mutate(value: unknown, m: { pick: number; op: string; key: string; replacement: unknown }): unknown {
  const nodes: Array<{ parent: Record<string, unknown> | unknown[]; key: string | number }> = [];
  const visit = (v: unknown) => {
    if (Array.isArray(v))
      for (const [i, x] of v.entries()) {
        nodes.push({ parent: v, key: i });
        visit(x);
      }
    else if (v && typeof v === "object")
      for (const [k, x] of Object.entries(v)) {
        nodes.push({ parent: v as Record<string, unknown>, key: k });
        visit(x);
      }
  };
  const copy = structuredClone(value);
  visit(copy);
  if (nodes.length === 0) return m.replacement;
  const n = nodes[m.pick % nodes.length]!;
  const p = n.parent as Record<string | number, unknown>;
  if (m.op === "replace") p[n.key] = m.replacement;
  else if (m.op === "drop") {
    if (Array.isArray(p)) (p as unknown[]).splice(n.key as number, 1);
    else delete p[n.key];
  } else if (m.op === "wrap") p[n.key] = [p[n.key]];
  else if (!Array.isArray(p)) p[m.key] = m.replacement;
  return copy;
}

describe("codecs under hostile input (fast-check)", () => {
  it("found seeds for most wire types in the golden fixtures", () => {
    expect(seeds.size).toBeGreaterThanOrEqual(15);
  });

  for (const type of types) {
    it(`${type}: random JSON, random text and mutated fixtures decode to a value or a WireDecodeError`, () => {
      const codec = codecs[type] as unknown as Codec<unknown>;
      fc.assert(
        fc.property(fc.jsonValue({ maxDepth: 4 }), (v) => check(codec, JSON.stringify(v) ?? "null")),
        { seed: SEED, numRuns: 150 },
      );
      fc.assert(
        fc.property(fc.string({ maxLength: 64 }), (t) => check(codec, t)),
        { seed: SEED, numRuns: 100 },
      );
      const base = seeds.get(type) ?? [];
      if (base.length)
        fc.assert(
          fc.property(fc.nat(), mutation, (i, m) =>
            check(codec, JSON.stringify(mutate(base[i % base.length], m))),
          ),
          { seed: SEED, numRuns: 300 },
        );
      // Texts cut at every length: EOF errors, never a crash.
      const whole = JSON.stringify(base[0] ?? {});
      for (let i = 0; i < Math.min(whole.length, 200); i++) check(codec, whole.slice(0, i));
    });
  }

  it("reports how many cases ran", () => {
    // ~550 per type plus truncations; printed for the README and the issue note.
    console.log(`codec fuzz: ${cases} cases over ${types.length} wire types`);
    expect(cases).toBeGreaterThan(types.length * 400);
  });
});
