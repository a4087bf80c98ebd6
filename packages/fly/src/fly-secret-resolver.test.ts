import { createLocalProvider } from "@roder/runner-local";
import { type FlyStandIn, type S3Emulator, startFlyStandIn, startS3Emulator } from "@roder/runner-testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createFlyProvider } from "./fly-provider.js";

// Issue 20 item 3 on Fly: the artifact store's credentials come from a secret resolver (the provider's
// environment has none); a resumed session asks it again; the value never shows in state, results or errors.
let standIn: FlyStandIn;
let s3: S3Emulator;
const CANARY = `fly-resolver-canary-${Date.now()}`;

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
    const asked: string[] = [];
    const make = () =>
      createFlyProvider({
        baseUrl: standIn.baseUrl,
        env: { FLY_API_TOKEN: standIn.token },
        secrets: async (ref) => {
          asked.push(ref.id);
          return { access_key_id: "S3RVER", secret_access_key: CANARY };
        },
      });
    const session = await make().createSession({
      config: {
        app: "roder-test",
        image: "debian:bookworm-slim",
        artifacts: { uri: "s3://fly-vault/out", credentials: { id: "vault" }, endpoint: s3.endpoint },
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
      const execs = JSON.stringify(standIn.bodies.filter((b) => b.path.endsWith("/exec")));
      for (const text of [JSON.stringify(session.state()), JSON.stringify(out), String(bad), execs])
        expect(text).not.toContain(CANARY);
    } finally {
      await session.close();
    }
  }, 180_000);
});
