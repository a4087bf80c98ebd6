import { describe, expect, it } from "vitest";
import { UnknownProviderError } from "./errors/unknown-provider-error.js";
import { createRunnerRegistry } from "./registry.js";
import type { RemoteRunnerProvider } from "./runner-interfaces.js";

const caps = {
  command_exec: true,
  file_read: true,
  file_write: true,
  port_preview: false,
  snapshots: false,
  cancellation: false,
  artifact_export: false,
  mounts: { s3: false, gcs: false, r2: false, azure_blob: false, box_storage: false, provider_native: false },
};

function fakeProvider(id: string, log: string[], invalid = false): RemoteRunnerProvider {
  return {
    id,
    capabilities: () => caps,
    setupHint: () => (invalid ? "set X_TOKEN" : null),
    limits: () => ({
      provider_id: id,
      max_file_bytes: null,
      max_command_ms: null,
      streaming: "buffered",
      reattach: false,
      attach: "none",
      attach_replay: null,
      cancellation: "none",
      pause: "none",
      notes: "a fake",
    }),
    planMounts: () => [],
    validateDestination: async (d) => {
      log.push(`validate ${d.id}`);
      if (invalid) throw new Error("invalid destination");
    },
    createSession: async (d) => {
      log.push(`create ${d.id}`);
      return {
        state: () => ({
          provider_id: id,
          session_id: "s",
          destination_id: d.id,
          snapshot: null,
          metadata: null,
        }),
      } as never;
    },
    resumeSession: async (s) => {
      log.push(`resume ${s.session_id}`);
      return {} as never;
    },
  };
}

describe("createRunnerRegistry", () => {
  it("validates before creating, resumes by provider id and lists providers", async () => {
    const log: string[] = [];
    const reg = createRunnerRegistry([fakeProvider("a", log), fakeProvider("b", log, true)]);
    await reg.createSession({
      id: "d1",
      provider_id: "a",
      config: null,
      default_manifest: { entries: [], mounts: [] },
    });
    await expect(
      reg.createSession({
        id: "d2",
        provider_id: "b",
        config: null,
        default_manifest: { entries: [], mounts: [] },
      }),
    ).rejects.toThrow("invalid destination");
    await reg.resumeSession({
      provider_id: "a",
      session_id: "s9",
      destination_id: "d1",
      snapshot: null,
      metadata: null,
    });
    expect(log).toEqual(["validate d1", "create d1", "validate d2", "resume s9"]);
    expect(reg.list().map((p) => [p.id, p.setupHint])).toEqual([
      ["a", null],
      ["b", "set X_TOKEN"],
    ]);
  });

  it("names the known providers when the id is unknown", () => {
    const reg = createRunnerRegistry([fakeProvider("b", []), fakeProvider("a", [])]);
    let err: unknown;
    try {
      reg.get("nope");
    } catch (e) {
      err = e;
    }
    expect(UnknownProviderError.isInstance(err)).toBe(true);
    expect((err as Error).message).toBe("unknown runner provider 'nope'; known providers: a, b");
  });
});
