import { InvalidSecretError, MissingSecretError, type RunnerMount } from "@roder/runner-contract";
import { describe, expect, it } from "vitest";
import { credentialVariables, resolveBucketCredentials } from "./credentials.js";
import { planRcloneMount } from "./rclone-plan.js";

const mount = (kind: RunnerMount["intent"]["kind"], uri: string, read_only: boolean): RunnerMount => ({
  name: "m",
  path: "m",
  read_only,
  intent: { kind, uri, credentials: { id: "c" } },
});
const CANARY = "canary-secret-7f1c";

describe("rclone mount plans", () => {
  it("s3 read-write: credentials only in env, write-back drained via rc on loopback without auth args", () => {
    const plan = planRcloneMount({
      mount: mount("s3", "s3://bkt/some/prefix", false),
      credentials: resolveBucketCredentials(
        "s3",
        { id: "c" },
        {
          RODER_SECRET_C_ACCESS_KEY_ID: "AKIDEXAMPLE",
          RODER_SECRET_C_SECRET_ACCESS_KEY: CANARY,
          RODER_SECRET_C_SESSION_TOKEN: `${CANARY}-token`,
        },
      ),
      mountPath: "/ws/m",
      rcPort: 41234,
    });
    expect(plan.program).toBe("rclone");
    expect(plan.args.slice(0, 3)).toEqual(["mount", "RODER:bkt/some/prefix", "/ws/m"]);
    expect(plan.args).toEqual(
      expect.arrayContaining([
        "--vfs-cache-mode",
        "writes",
        "--vfs-write-back",
        "0s",
        "--dir-cache-time",
        "1s",
        "--rc",
      ]),
    );
    // The rc never runs open: calls that need authorisation stay refused (no --rc-no-auth).
    expect(plan.args).not.toContain("--rc-no-auth");
    expect(plan.args[plan.args.indexOf("--rc-addr") + 1]).toBe("127.0.0.1:41234");
    expect(plan.args).not.toContain("--read-only");
    expect(plan.args.join(" ")).not.toContain(CANARY);
    expect(plan.env).toMatchObject({
      RCLONE_CONFIG: "/dev/null",
      RCLONE_CONFIG_RODER_TYPE: "s3",
      RCLONE_CONFIG_RODER_PROVIDER: "AWS",
      RCLONE_CONFIG_RODER_SECRET_ACCESS_KEY: CANARY,
      RCLONE_CONFIG_RODER_SESSION_TOKEN: `${CANARY}-token`,
    });
    expect(plan.secretEnv.sort()).toEqual([
      "RCLONE_CONFIG_RODER_ACCESS_KEY_ID",
      "RCLONE_CONFIG_RODER_SECRET_ACCESS_KEY",
      "RCLONE_CONFIG_RODER_SESSION_TOKEN",
    ]);
    expect(plan.unsetEnv).toContain("AWS_CA_BUNDLE");
    expect(plan.unmount[0]).toEqual({ program: "fusermount3", args: ["-u", "/ws/m"] });
    // Serialisable: a remote provider ships it as JSON.
    expect(JSON.parse(JSON.stringify(plan))).toEqual(plan);
  });

  it("read-only mounts use --read-only and no rc", () => {
    const plan = planRcloneMount({
      mount: mount("r2", "r2://bkt", true),
      credentials: resolveBucketCredentials(
        "r2",
        { id: "c" },
        {
          RODER_SECRET_C_ACCOUNT_ID: "0123456789abcdef0123456789abcdef",
          RODER_SECRET_C_ACCESS_KEY_ID: "a",
          RODER_SECRET_C_SECRET_ACCESS_KEY: CANARY,
        },
      ),
      mountPath: "/ws/r",
      rcPort: 5000,
    });
    expect(plan.args).toContain("--read-only");
    expect(plan.args).not.toContain("--rc");
    expect(plan.rcAddr).toBeNull();
    expect(plan.env).toMatchObject({
      RCLONE_CONFIG_RODER_PROVIDER: "Cloudflare",
      RCLONE_CONFIG_RODER_REGION: "auto",
      RCLONE_CONFIG_RODER_ENDPOINT: "https://0123456789abcdef0123456789abcdef.r2.cloudflarestorage.com",
    });
  });

  it("azure from a connection string to Azurite sets use_emulator + endpoint; the key stays in env", () => {
    const cs = `DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=${CANARY};BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;`;
    const plan = planRcloneMount({
      mount: mount("azure_blob", "azure://devstoreaccount1/ctr/p", true),
      credentials: resolveBucketCredentials(
        "azure_blob",
        { id: "c" },
        { RODER_SECRET_C_CONNECTION_STRING: cs },
      ),
      mountPath: "/ws/a",
    });
    expect(plan.env).toMatchObject({
      RCLONE_CONFIG_RODER_TYPE: "azureblob",
      RCLONE_CONFIG_RODER_ACCOUNT: "devstoreaccount1",
      RCLONE_CONFIG_RODER_KEY: CANARY,
      RCLONE_CONFIG_RODER_USE_EMULATOR: "true",
      RCLONE_CONFIG_RODER_ENDPOINT: "http://127.0.0.1:10000/devstoreaccount1",
    });
    expect(plan.args[1]).toBe("RODER:ctr/p");
    expect(plan.args.join(" ")).not.toContain(CANARY);
  });

  it("a GCS mount with HMAC keys only is refused (rclone 1.60 cannot use them)", () => {
    expect(() =>
      planRcloneMount({
        mount: mount("gcs", "gs://gcs-bucket/p", true),
        credentials: resolveBucketCredentials(
          "gcs",
          { id: "c" },
          { RODER_SECRET_C_HMAC_ACCESS_ID: "id", RODER_SECRET_C_HMAC_SECRET: CANARY },
        ),
        mountPath: "/ws/g",
      }),
    ).toThrow(/service-account JSON/);
  });

  it("credentials: missing fields name every variable; one-of groups are InvalidSecretError", () => {
    const missing = (() => {
      try {
        resolveBucketCredentials("s3", { id: "job-1" }, {});
      } catch (e) {
        return e;
      }
    })();
    expect(MissingSecretError.isInstance(missing)).toBe(true);
    expect((missing as Error).message).toContain("RODER_SECRET_JOB_1_SECRET_ACCESS_KEY");
    expect(() =>
      resolveBucketCredentials("azure_blob", { id: "c" }, { RODER_SECRET_C_ACCOUNT: "acct" }),
    ).toThrow(InvalidSecretError);
    expect(() =>
      resolveBucketCredentials("gcs", { id: "c" }, { RODER_SECRET_C_HMAC_ACCESS_ID: "x" }),
    ).toThrow(InvalidSecretError);
    expect(credentialVariables("box_storage", { id: "b" })).toEqual([
      "RODER_SECRET_B_TOKEN_JSON",
      "RODER_SECRET_B_ACCESS_TOKEN",
      "RODER_SECRET_B_ROOT_FOLDER_ID",
      "RODER_SECRET_B_TOKEN_URL",
      "RODER_SECRET_B_HTTPS_PROXY",
      "RODER_SECRET_B_CA_CERT_FILE",
    ]);
  });

  it("box: token and proxy only in env (HTTPS_PROXY, RCLONE_CA_CERT, token_url), root folder from the URI", () => {
    const plan = planRcloneMount({
      mount: mount("box_storage", "box://12345", false),
      credentials: resolveBucketCredentials(
        "box_storage",
        { id: "c" },
        {
          RODER_SECRET_C_TOKEN_JSON: `{"access_token":"${CANARY}","refresh_token":"r"}`,
          RODER_SECRET_C_TOKEN_URL: "https://api.box.com/oauth2/token",
          RODER_SECRET_C_HTTPS_PROXY: `http://user:${CANARY}@127.0.0.1:3128`,
          RODER_SECRET_C_CA_CERT_FILE: "/etc/ssl/extra-ca.pem",
        },
      ),
      mountPath: "/ws/b",
    });
    expect(plan.env).toMatchObject({
      RCLONE_CONFIG_RODER_TYPE: "box",
      RCLONE_CONFIG_RODER_ROOT_FOLDER_ID: "12345",
      RCLONE_CONFIG_RODER_TOKEN_URL: "https://api.box.com/oauth2/token",
      RCLONE_CA_CERT: "/etc/ssl/extra-ca.pem",
    });
    expect(plan.secretEnv).toEqual(expect.arrayContaining(["RCLONE_CONFIG_RODER_TOKEN", "HTTPS_PROXY"]));
    expect(plan.args[1]).toBe("RODER:");
    expect(plan.args.join(" ")).not.toContain(CANARY);
    expect(() =>
      resolveBucketCredentials(
        "box_storage",
        { id: "c" },
        { RODER_SECRET_C_ACCESS_TOKEN: "t", RODER_SECRET_C_CA_CERT_FILE: "relative.pem" },
      ),
    ).toThrow(/CA_CERT_FILE/);
  });
});
