import { describe, expect, it } from "vitest";
import { z } from "zod";
import { InvalidSecretError } from "./errors/invalid-secret-error.js";
import { MissingSecretError } from "./errors/missing-secret-error.js";
import { SecretInConfigError } from "./errors/secret-in-config-error.js";
import { assertNoSecretsInConfig, redactSecrets, resolveSecret, secretEnvName } from "./secrets.js";

const CANARY = "canary-9f1c2e7d-SECRET";
const schema = z.object({
  access_key_id: z.string(),
  secret_access_key: z.string(),
  session_token: z.string().optional(),
});

function caught(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  throw new Error("expected a throw");
}

describe("env secrets", () => {
  it("derives variable names from the ref id", () => {
    expect(secretEnvName("r2-readonly", "access_key_id")).toBe("RODER_SECRET_R2_READONLY_ACCESS_KEY_ID");
    expect(secretEnvName("my.team/s3", "x")).toBe("RODER_SECRET_MY_TEAM_S3_X");
  });

  it("resolves every field from the injected env", () => {
    const env = { RODER_SECRET_R2_ACCESS_KEY_ID: "id", RODER_SECRET_R2_SECRET_ACCESS_KEY: CANARY };
    expect(resolveSecret({ id: "r2" }, schema, env)).toEqual({
      access_key_id: "id",
      secret_access_key: CANARY,
    });
  });

  it("names every missing variable and never a value", () => {
    const e = caught(() =>
      resolveSecret({ id: "r2" }, schema, { RODER_SECRET_R2_SESSION_TOKEN: CANARY }),
    ) as MissingSecretError;
    expect(MissingSecretError.isInstance(e)).toBe(true);
    expect(e.variables).toEqual(["RODER_SECRET_R2_ACCESS_KEY_ID", "RODER_SECRET_R2_SECRET_ACCESS_KEY"]);
    expect(e.message).toContain("RODER_SECRET_R2_SECRET_ACCESS_KEY");
    expect(JSON.stringify({ m: e.message, s: e.stack, j: e.toJSON() })).not.toContain(CANARY);
  });

  it("reports malformed values by variable name only", () => {
    const json = z.object({ service_account_json: z.string().refine((s) => s.trim().startsWith("{")) });
    const e = caught(() =>
      resolveSecret({ id: "gcs" }, json, { RODER_SECRET_GCS_SERVICE_ACCOUNT_JSON: CANARY }),
    ) as InvalidSecretError;
    expect(InvalidSecretError.isInstance(e)).toBe(true);
    expect(e.message).toContain("RODER_SECRET_GCS_SERVICE_ACCOUNT_JSON");
    expect(e.message).not.toContain(CANARY);
  });

  it("refuses secret-looking keys and values in destination configs, naming paths only", () => {
    const bad = [
      { api_key: CANARY },
      { nested: { secretAccessKey: CANARY } },
      { artifacts: { credentials: { access_key_id: "x", secret: CANARY } } },
      { url: `https://user:${CANARY}@host/x` },
      { pem: "-----BEGIN RSA PRIVATE KEY-----\nabc" },
      { key: "AKIAABCDEFGHIJKLMNOP" },
      { link: `https://b.s3.amazonaws.com/k?X-Amz-Signature=${CANARY}` },
      { token: CANARY },
    ];
    for (const config of bad) {
      const e = caught(() => assertNoSecretsInConfig(config)) as SecretInConfigError;
      expect(SecretInConfigError.isInstance(e), JSON.stringify(config)).toBe(true);
      expect(e.message).toContain("env secret ref");
      expect(e.message).not.toContain(CANARY);
    }
  });

  it("accepts secret refs, env-variable names and ordinary settings", () => {
    expect(() =>
      assertNoSecretsInConfig({
        app: "my-app",
        token_env: "FLY_API_TOKEN",
        tokenEnv: "X",
        artifacts: { uri: "s3://bucket/out", credentials: { id: "s3-writer" } },
        mounts: [{ credentials: { id: "r2" } }],
        isolation: "bwrap",
        sizes: [1, 2],
      }),
    ).not.toThrow();
  });

  it("redacts every secret occurrence", () => {
    expect(redactSecrets(`a ${CANARY} b ${CANARY}`, [CANARY])).toBe("a *** b ***");
  });
});
