import { describe, expect, it } from "vitest";
import { z } from "zod";
import { runnerCapabilities } from "./capabilities.js";
import { InvalidDestinationConfigError, RunnerError, SecretInConfigError } from "./errors/index.js";
import { parseProviderConfig } from "./provider-config.js";
import { checkProviderId, decodeSessionMetadata } from "./provider-id.js";
import { SessionLifecycle } from "./session-lifecycle.js";

const caught = (f: () => unknown): unknown => {
  try {
    f();
  } catch (e) {
    return e;
  }
  throw new Error("did not throw");
};

describe("parseProviderConfig", () => {
  const Schema = z
    .object({
      region: z.enum(["iad", "ams"]).default("iad"),
      ttl_seconds: z.number().int().positive().default(60),
      allow_credentials_in_sandbox: z.boolean().optional(),
    })
    .strict();

  it("gives the schema's output, defaults included (no config = {})", () => {
    expect(parseProviderConfig(Schema, undefined, "p")).toEqual({ region: "iad", ttl_seconds: 60 });
    expect(parseProviderConfig(Schema, { region: "ams" }, "p").region).toBe("ams");
  });

  it("refuses a bad field with InvalidDestinationConfigError naming the provider and the field, not the value", () => {
    const value = "moon-base-7";
    const e = caught(() => parseProviderConfig(Schema, { region: value, ttl_seconds: -1 }, "acme"));
    expect(InvalidDestinationConfigError.isInstance(e)).toBe(true);
    const err = e as InvalidDestinationConfigError;
    expect(err.providerId).toBe("acme");
    expect(err.message).toMatch(/^invalid destination config for provider 'acme': region: .*; ttl_seconds: /);
    expect(err.issues.map((i) => i.path)).toEqual(["region", "ttl_seconds"]);
    expect(err.message).not.toContain(value);
    const unknown = caught(() => parseProviderConfig(Schema, { nope: 1 }, "acme")) as Error;
    expect(unknown.message).toMatch(/nope/);
  });

  it("refuses a secret in the config before the schema, naming the key; allowKeys lets a switch through", () => {
    const e = caught(() => parseProviderConfig(Schema, { api_key: "x" }, "acme", { hint: "use ACME_KEY" }));
    expect(SecretInConfigError.isInstance(e)).toBe(true);
    expect(String(e)).toMatch(/api_key/);
    expect(String(e)).toMatch(/ACME_KEY/);
    const ok = { allow_credentials_in_sandbox: true };
    expect(() => parseProviderConfig(Schema, ok, "acme")).toThrow();
    expect(
      parseProviderConfig(Schema, ok, "acme", { allowKeys: ["allow_credentials_in_sandbox"] })
        .allow_credentials_in_sandbox,
    ).toBe(true);
  });
});

describe("checkProviderId and decodeSessionMetadata", () => {
  it("passes its own provider's destination or snapshot and refuses another's as a config error", () => {
    expect(() => checkProviderId("fly", "destination", "fly")).not.toThrow();
    for (const what of ["destination", "snapshot"] as const) {
      const e = caught(() => checkProviderId("fly", what, "e2b"));
      expect(InvalidDestinationConfigError.isInstance(e)).toBe(true);
      expect(String(e)).toContain(`${what} is for provider 'e2b'`);
    }
  });

  it("decodes metadata by its schema; another provider's state or bad metadata is invalid_request", () => {
    const Meta = z.object({ version: z.literal(1).default(1), id: z.string() });
    expect(decodeSessionMetadata(Meta, { provider_id: "p", metadata: { id: "a" } }, "p")).toEqual({
      version: 1,
      id: "a",
    });
    const other = caught(() => decodeSessionMetadata(Meta, { provider_id: "q", metadata: { id: "a" } }, "p"));
    expect(RunnerError.isInstance(other) && other.code).toBe("invalid_request");
    expect(String(other)).toContain("not a p session state: it is for provider 'q'");
    const bad = caught(() =>
      decodeSessionMetadata(Meta, { provider_id: "p", metadata: { id: 7 } }, "p", "not a p agent state"),
    );
    expect(RunnerError.isInstance(bad) && bad.code).toBe("invalid_request");
    expect(String(bad)).toMatch(/not a p agent state: id: /);
    const none = caught(() => decodeSessionMetadata(Meta, { provider_id: "p", metadata: null }, "p"));
    expect(String(none)).toMatch(/not a p session state: \(metadata\): /);
  });
});

describe("SessionLifecycle", () => {
  it("open, then paused (session_paused), closed (session_not_found); close once", () => {
    const life = new SessionLifecycle({ providerId: "p", sessionId: () => "s-1" });
    expect(() => life.ensureOpen()).not.toThrow();
    const aborted = AbortSignal.abort();
    const c = caught(() => life.ensureOpen(aborted, "readFile"));
    expect(RunnerError.isInstance(c) && c.code).toBe("cancelled");
    expect(life.markClosed()).toBe(true);
    expect(life.markClosed()).toBe(false);
    const e = caught(() => life.ensureOpen());
    expect(RunnerError.isInstance(e) && e.code).toBe("session_not_found");
    expect(String(e)).toContain("session 's-1' is closed");
  });

  it("guard: the function behind ensureOpen, a refusal as a rejected promise", async () => {
    const life = new SessionLifecycle({ providerId: "p", sessionId: () => "s-2" });
    const calls: number[] = [];
    const add = life.guard(async (a: number, b: number) => {
      calls.push(a);
      return a + b;
    });
    expect(await add(1, 2)).toBe(3);
    life.markClosed();
    const p = add(5, 6);
    await expect(p).rejects.toMatchObject({ code: "session_not_found" });
    expect(calls).toEqual([1]);
  });

  it("names the provider's thing and its word for paused", () => {
    const life = new SessionLifecycle({
      providerId: "fly",
      sessionId: () => "m-1",
      noun: "machine",
      pausedAs: "suspended",
    });
    life.markPaused();
    expect(life.paused).toBe(true);
    const e = caught(() => life.ensureOpen());
    expect(RunnerError.isInstance(e) && e.code).toBe("session_paused");
    expect(String(e)).toContain("machine m-1 is suspended: resume it with provider.resumeSession");
    const fresh = new SessionLifecycle({ providerId: "e2b", sessionId: () => "sb", noun: "sandbox" });
    fresh.markClosed();
    expect(String(caught(() => fresh.ensureOpen()))).toContain("session (sandbox sb) is closed");
  });
});

describe("runnerCapabilities", () => {
  it("every capability but those given", () => {
    const caps = runnerCapabilities({ snapshots: false, mounts: { provider_native: false } });
    expect(caps.snapshots).toBe(false);
    expect(caps.command_exec && caps.artifact_export && caps.mounts.s3).toBe(true);
    expect(caps.mounts.provider_native).toBe(false);
  });
});
