import { describe, expect, it } from "vitest";
import { codecs } from "./codecs.js";
import { RunnerError } from "./errors/runner-error.js";
import { UnsupportedCapabilityError } from "./errors/unsupported-capability-error.js";
import { WireDecodeError } from "./errors/wire-decode-error.js";

describe("codecs beyond the fixtures", () => {
  it("round-trips all 256 byte values and a multi-MiB body", () => {
    const all = Uint8Array.from({ length: 256 }, (_, i) => i);
    const text = codecs.RunnerFileWriteRequest.encode({ path: "a.bin", contents: all });
    expect(text.startsWith('{"path":"a.bin","contents":[0,1,2,')).toBe(true);
    expect(codecs.RunnerFileWriteRequest.decode(text).contents).toEqual(all);
    const big = new Uint8Array(8 * 1024 * 1024).map((_, i) => (i * 31) & 255);
    const back = codecs.RunnerFileReadResult.decode(
      codecs.RunnerFileReadResult.encode({ path: "b", contents: big }),
    );
    // Buffer.equals: a deep toEqual over 8 M elements takes minutes.
    expect(Buffer.from(back.contents).equals(Buffer.from(big))).toBe(true);
  });

  it("writes keys in Rust order whatever order the caller used, and omits timeout_ms when absent", () => {
    const value = {
      env: [["A", "1"]] as [string, string][],
      cwd: null,
      args: [],
      program: "ls",
      command_id: "c",
    };
    expect(codecs.RunnerCommandRequest.encode(value)).toBe(
      '{"command_id":"c","program":"ls","args":[],"cwd":null,"env":[["A","1"]]}',
    );
    expect(codecs.RunnerCommandRequest.encode({ ...value, timeout_ms: 5 })).toBe(
      '{"command_id":"c","program":"ls","args":[],"cwd":null,"env":[["A","1"]],"timeout_ms":5}',
    );
  });

  it("names the field path in decode errors", () => {
    let err: unknown;
    try {
      codecs.RunnerDestination.decode(
        '{"id":"d","provider_id":"p","default_manifest":{"mounts":[{"name":"m","path":"x","read_only":"yes"}]}}',
      );
    } catch (e) {
      err = e;
    }
    expect(WireDecodeError.isInstance(err)).toBe(true);
    expect((err as WireDecodeError).path).toEqual(["default_manifest", "mounts", 0, "read_only"]);
    expect((err as Error).message).toContain("default_manifest.mounts[0].read_only");
  });

  it("errors are recognisable across copies of the package (Symbol.for marker)", () => {
    const e = new UnsupportedCapabilityError({ providerId: "x", capability: "snapshots" });
    // What a second copy of this package produces: another class, the same global symbol and code.
    class OtherCopyError extends Error {
      code = "unsupported_capability";
    }
    const clone = new OtherCopyError("x");
    Object.defineProperty(clone, Symbol.for("roder.runner.error"), { value: true });
    expect(UnsupportedCapabilityError.isInstance(clone)).toBe(true);
    expect(RunnerError.isInstance(new Error("plain"))).toBe(false);
    expect(e.code).toBe("unsupported_capability");
    expect(e.name).toBe("UnsupportedCapabilityError");
  });
});
