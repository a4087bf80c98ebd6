import { createLocalProvider } from "@roder/runner-local";
import {
  checkResolvedArtifactCredentials,
  createSecretCanaries,
  type FlyStandIn,
  type S3Emulator,
  startFlyStandIn,
  startS3Emulator,
} from "@roder/runner-testkit";
import { afterAll, beforeAll, describe, it } from "vitest";
import { createFlyProvider } from "./fly-provider.js";

// Issue 20 item 3 on Fly: the artifact store's credentials come from a secret resolver (the provider's
// environment has none); a resumed session asks it again; the value never shows in state, results, errors or the
// commands the machine was sent.
let standIn: FlyStandIn;
let s3: S3Emulator;
const canaries = createSecretCanaries();

beforeAll(async () => {
  [standIn, s3] = await Promise.all([
    startFlyStandIn({ backend: createLocalProvider() }),
    startS3Emulator({ buckets: ["fly-vault"] }),
  ]);
}, 60_000);
afterAll(async () => {
  await Promise.all([standIn?.stop(), s3?.stop()]);
});

describe("createFlyProvider({ secrets })", () => {
  it("exports with credentials only the resolver has, also after resume", async () => {
    await checkResolvedArtifactCredentials({
      createProvider: (secrets) =>
        createFlyProvider({ baseUrl: standIn.baseUrl, env: { FLY_API_TOKEN: standIn.token }, secrets }),
      config: {
        app: "roder-test",
        image: "debian:bookworm-slim",
        artifacts: { uri: "s3://fly-vault/out", credentials: { id: "vault" }, endpoint: s3.endpoint },
      },
      secretId: "vault",
      answer: { access_key_id: "S3RVER", secret_access_key: canaries.make("fly-resolver-canary-") },
      canaries,
      observed: () => [JSON.stringify(standIn.bodies.filter((b) => b.path.endsWith("/exec")))],
    });
  }, 180_000);
});
