import { describe, expect, it } from "vitest";
import { codecs } from "./codecs.js";
import {
  parseArtifactExportInput,
  parseCommandInput,
  parseDestinationInput,
  parseFileWriteInput,
  parsePortInput,
} from "./method-inputs.js";
import { readText } from "./runner-interfaces.js";

describe("method inputs (the short path)", () => {
  it("a destination needs only its config: id generated, provider_id the provider's, empty manifest", () => {
    const a = parseDestinationInput({ config: { isolation: "none" } }, "unix-local");
    const b = parseDestinationInput({ config: {} }, "unix-local");
    expect(a.id).toMatch(/^dest-[0-9a-f-]{36}$/);
    expect(a.id).not.toBe(b.id);
    expect(a.provider_id).toBe("unix-local");
    expect(a.default_manifest).toEqual({ entries: [], mounts: [] });
    // What goes on the wire is still Rust's full shape.
    expect(JSON.parse(codecs.RunnerDestination.encode(a))).toEqual({
      id: a.id,
      provider_id: "unix-local",
      config: { isolation: "none" },
      default_manifest: { entries: [], mounts: [] },
    });
  });

  it("keeps a given id and provider_id (another provider's id is the provider's to refuse)", () => {
    const d = parseDestinationInput({ id: "mine", provider_id: "fly", config: null }, "unix-local");
    expect([d.id, d.provider_id]).toEqual(["mine", "fly"]);
    expect(() => parseDestinationInput({ id: 7 } as never, "x")).toThrow();
  });

  it("a command needs only its program: command_id generated, args/cwd/env defaulted", () => {
    const r = parseCommandInput({ program: "echo" });
    expect(r.command_id).toMatch(/^cmd-[0-9a-f-]{36}$/);
    expect(r).toMatchObject({ program: "echo", args: [], cwd: null, env: [] });
    expect(parseCommandInput({ program: "x", command_id: "c1" }).command_id).toBe("c1");
    expect(() => parseCommandInput({} as never)).toThrow();
  });

  it("writeFile takes text (UTF-8) or bytes", () => {
    expect([...parseFileWriteInput({ path: "a", contents: "é\n" }).contents]).toEqual([0xc3, 0xa9, 0x0a]);
    const bytes = new Uint8Array([0, 255]);
    expect(parseFileWriteInput({ path: "a", contents: bytes }).contents).toBe(bytes);
    expect([...parseFileWriteInput({ path: "a", contents: [1, 2] }).contents]).toEqual([1, 2]);
    expect(() => parseFileWriteInput({ path: "a", contents: 5 } as never)).toThrow();
  });

  it("exposePort's label defaults to null, exportArtifact's recursive to false", () => {
    expect(parsePortInput({ port: 8080 })).toEqual({ port: 8080, label: null });
    expect(parseArtifactExportInput({ path: "out" })).toEqual({ path: "out", recursive: false });
  });

  it("readText decodes a file's bytes as UTF-8", async () => {
    const session = {
      readFile: async ({ path }: { path: string }) => ({
        path,
        contents: new TextEncoder().encode(`hé ${path}`),
      }),
    };
    expect(await readText(session, "f.txt")).toBe("hé f.txt");
  });
});
