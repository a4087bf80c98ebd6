import { createLocalProvider } from "@roder/runner-local";
import { type E2bStandIn, type S3Emulator, startE2bStandIn, startS3Emulator } from "@roder/runner-testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createE2bProvider } from "./e2b-provider.js";

// Issue 20 item 3 on E2B: the artifact store's credentials come from a secret resolver (the provider's
// environment has none); a resumed session asks it again; the value never shows in state, results or errors.
let standIn: E2bStandIn;
let s3: S3Emulator;
const CANARY = `e2b-resolver-canary-${Date.now()}`;

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
    const asked: string[] = [];
    const make = () =>
      createE2bProvider({
        apiUrl: standIn.apiUrl,
        sandboxUrl: standIn.sandboxUrl,
        domain: standIn.domain,
        env: { E2B_API_KEY: standIn.apiKey },
        secrets: async (ref) => {
          asked.push(ref.id);
          return { access_key_id: "S3RVER", secret_access_key: CANARY };
        },
      });
    const session = await make().createSession({
      config: {
        template: "base",
        artifacts: { uri: "s3://e2b-vault/out", credentials: { id: "vault" }, endpoint: s3.endpoint },
      },
    });
    try {
      expect(asked).toEqual(["vault"]);
      await session.writeFile({ path: "a.txt", contents: "resolved" });
      const out = await session.exportArtifact({ path: "a.txt", recursive: false });
      expect(await (await fetch(out.url!)).text()).toBe("resolved");
      const again = await make().resumeSession(session.state());
      const out2 = await again.exportArtifact({ path: "a.txt", recursive: false });
      expect(await (await fetch(out2.url!)).text()).toBe("resolved");
      expect(asked).toEqual(["vault", "vault"]);
      const bad = await again.readFile({ path: "/nope" }).catch((e) => e);
      for (const text of [
        JSON.stringify(session.state()),
        JSON.stringify(out),
        JSON.stringify(out2),
        String(bad),
      ])
        expect(text).not.toContain(CANARY);
    } finally {
      await session.close();
    }
  }, 120_000);
});
