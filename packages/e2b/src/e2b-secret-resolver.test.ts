import { createLocalProvider } from "@roder/runner-local";
import {
  checkResolvedArtifactCredentials,
  createSecretCanaries,
  type E2bStandIn,
  type S3Emulator,
  startE2bStandIn,
  startS3Emulator,
} from "@roder/runner-testkit";
import { afterAll, beforeAll, describe, it } from "vitest";
import { createE2bProvider } from "./e2b-provider.js";

// Issue 20 item 3 on E2B: the artifact store's credentials come from a secret resolver (the provider's
// environment has none); a resumed session asks it again; the value never shows in state, results or errors.
let standIn: E2bStandIn;
let s3: S3Emulator;
const canaries = createSecretCanaries();

beforeAll(async () => {
  [standIn, s3] = await Promise.all([
    startE2bStandIn({ backend: createLocalProvider() }),
    startS3Emulator({ buckets: ["e2b-vault"] }),
  ]);
}, 60_000);
afterAll(async () => {
  await Promise.all([standIn?.stop(), s3?.stop()]);
});

describe("createE2bProvider({ secrets })", () => {
  it("exports with credentials only the resolver has, also after resume", async () => {
    await checkResolvedArtifactCredentials({
      createProvider: (secrets) =>
        createE2bProvider({
          apiUrl: standIn.apiUrl,
          sandboxUrl: standIn.sandboxUrl,
          domain: standIn.domain,
          env: { E2B_API_KEY: standIn.apiKey },
          secrets,
        }),
      config: {
        template: "base",
        artifacts: { uri: "s3://e2b-vault/out", credentials: { id: "vault" }, endpoint: s3.endpoint },
      },
      secretId: "vault",
      answer: { access_key_id: "S3RVER", secret_access_key: canaries.make("e2b-resolver-canary-") },
      canaries,
    });
  }, 120_000);
});
