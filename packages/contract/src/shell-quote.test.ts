import { spawnSync } from "node:child_process";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { RunnerError } from "./errors/runner-error.js";
import { argvToShell, shellQuote } from "./shell-quote.js";

// The program that receives the quoted line prints each argument followed by NUL (coreutils' printf: quick to
// start, so 150 runs stay cheap on a loaded machine), so the test compares bytes.
const PRINT_ARGV = ["/usr/bin/printf", "%s\\0"];

function throughShell(args: string[]): string {
  const line = `${argvToShell([...PRINT_ARGV, ...args])}`;
  const r = spawnSync("sh", ["-c", line], { encoding: "utf8" });
  expect(r.status, r.stderr).toBe(0);
  expect(r.stdout.endsWith("\u0000")).toBe(true);
  return r.stdout.slice(0, -1);
}

// Strings without NUL (argv cannot carry it), biased towards the characters shells care about.
const hostile = fc
  .oneof(
    fc.string({ unit: "grapheme", maxLength: 20 }),
    fc.string({
      unit: fc.constantFrom(
        "'",
        '"',
        "\\",
        "$",
        "`",
        "\n",
        " ",
        "\t",
        "*",
        "?",
        "!",
        "~",
        "#",
        ";",
        "&",
        "|",
        "(",
        ")",
        "{",
        "}",
        "<",
        ">",
        "é",
        "😀",
        "-",
        "=",
      ),
      maxLength: 16,
    }),
    fc.string({ unit: "binary", maxLength: 12 }),
  )
  .map((s) => s.replace(/\u0000/g, "").replace(/[\ud800-\udfff]/g, "x"));

describe("shellQuote / argvToShell", () => {
  it("passes arbitrary arguments through sh -c byte for byte", () => {
    fc.assert(
      fc.property(fc.array(hostile, { minLength: 1, maxLength: 4 }), (args) => {
        expect(throughShell(args)).toBe(args.join("\u0000"));
      }),
      { numRuns: 150 },
    );
  });

  it("keeps empty strings, leading dashes and quotes as single arguments", () => {
    const args = [
      "",
      "-n",
      "it's",
      '"q"',
      "a b",
      "$HOME",
      "`id`",
      "line1\nline2",
      "back\\slash",
      "ünïcødé 😀",
    ];
    expect(throughShell(args)).toBe(args.join("\u0000"));
  });

  it("leaves safe words bare and refuses NUL and empty argv", () => {
    expect(shellQuote("ls")).toBe("ls");
    expect(shellQuote("a'b")).toBe("'a'\\''b'");
    expect(() => shellQuote("a\u0000b")).toThrow(/NUL/);
    expect(
      RunnerError.isInstance(
        (() => {
          try {
            argvToShell([]);
          } catch (e) {
            return e;
          }
        })(),
      ),
    ).toBe(true);
  });
});
