import { describe, expect, it } from "vitest";
import { RunnerError } from "./errors/index.js";
import { checkPort, checkPty, checkTerminalSize, isTerminalSize } from "./session-guards.js";

describe("session guards", () => {
  it("ports: 1..65535, whole numbers", () => {
    for (const ok of [1, 80, 65535]) expect(() => checkPort(ok)).not.toThrow();
    for (const bad of [0, -1, 65536, 1.5, Number.NaN]) {
      const e = (() => {
        try {
          checkPort(bad);
        } catch (x) {
          return x;
        }
      })();
      expect(RunnerError.isInstance(e) && e.code).toBe("invalid_request");
      expect(String((e as Error).message)).toContain(`port must be 1..65535, got ${bad}`);
    }
  });

  it("terminal sizes: { cols, rows } whole numbers 1..65535", () => {
    expect(isTerminalSize({ cols: 80, rows: 24 })).toBe(true);
    for (const bad of [null, {}, { cols: 0, rows: 24 }, { cols: 80, rows: 70000 }, { cols: "80", rows: 24 }])
      expect(isTerminalSize(bad)).toBe(false);
    expect(() => checkPty({ cols: 80, rows: 24 })).not.toThrow();
    expect(() => checkPty({ cols: 80 })).toThrow(
      /pty must be \{ cols, rows \} with whole numbers 1\.\.65535/,
    );
    expect(() => checkTerminalSize(100, 40)).not.toThrow();
    expect(() => checkTerminalSize(0, 40)).toThrow(
      /terminal size must be whole numbers 1\.\.65535, got 0x40/,
    );
  });
});
