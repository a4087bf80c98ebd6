import { ProviderApiError } from "@roder/runner-contract";
import { createLocalProvider } from "@roder/runner-local";
import {
  createSecretCanaries,
  errorText,
  type FlyStandIn,
  startFlyStandIn,
  startRotatingCredentialFront,
  thrown,
} from "@roder/runner-testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AgentImage, makeAgentImage } from "./__fixtures__/agent-image.js";
import { createFlyProvider, type FlyProviderSettings } from "./fly-provider.js";
import { createFlySweeper } from "./fly-sweeper.js";

// Issue 20 item 3: the Fly API token from an async function or from the secret resolver (`tokenSecret`), in
// exec and agent mode, resumed by a second provider instance; a rotated token is picked up (one more attempt after
// a 401). Every token is a canary: never in state, errors, the stand-in's request log or recorded bodies.
const canaries = createSecretCanaries();
const TOKEN = canaries.make("fly-token-canary-");
const OLD = canaries.make("fly-old-canary-");
const NEW = canaries.make("fly-new-canary-");
const config = { app: "roder-test", image: "debian:bookworm-slim" };

/** A rotation in front of the stand-in (whose token is fixed), refusing as Fly does. */
const rotatingFront = (target: FlyStandIn, initial: string) =>
  startRotatingCredentialFront({
    target: target.baseUrl,
    header: "authorization",
    scheme: "Bearer",
    initial,
    targetCredential: target.token,
    refusal: { status: 401, body: { error: "unauthorized" } },
  });

let standIn: FlyStandIn;
let agentStandIn: FlyStandIn;
let image: AgentImage;
beforeAll(async () => {
  image = await makeAgentImage();
  [standIn, agentStandIn] = await Promise.all([
    startFlyStandIn({ backend: createLocalProvider(), token: TOKEN }),
    startFlyStandIn({ backend: createLocalProvider(), token: TOKEN, imageDirs: image.dirs }),
  ]);
}, 120_000);
afterAll(async () => {
  await Promise.all([standIn?.stop(), agentStandIn?.stop()]);
  image?.remove();
});

const noCanary = canaries.expectAbsent;

/** Create, run a command, resume in a second provider instance, run there, close. */
async function roundTrip(make: () => ReturnType<typeof createFlyProvider>, destinationConfig: object) {
  const first = make();
  expect(first.setupHint()).toBeNull();
  const session = await first.createSession({ config: destinationConfig });
  let closed = false;
  try {
    const made = await session.runCommand({ program: "sh", args: ["-c", "echo made > f.txt; cat f.txt"] });
    expect(made.stdout).toBe("made\n");
    const again = await make().resumeSession(JSON.parse(JSON.stringify(session.state())));
    expect((await again.runCommand({ program: "cat", args: ["f.txt"] })).stdout).toBe("made\n");
    const bad = await thrown(() => again.readFile({ path: "missing.txt" }));
    noCanary(JSON.stringify(session.state()), JSON.stringify(again.state()), errorText(bad));
    // The second instance closes it (its API calls with its own token).
    await again.close();
    closed = true;
  } finally {
    if (!closed) await session.close();
  }
}

describe("the Fly API token from a function or a secret resolver", () => {
  it("an async token function: asked per API call, create → run → resume elsewhere → close", async () => {
    let asked = 0;
    const settings: FlyProviderSettings = {
      baseUrl: standIn.baseUrl,
      env: {},
      token: async () => {
        asked++;
        await new Promise((r) => setTimeout(r, 1));
        return TOKEN;
      },
    };
    await roundTrip(() => createFlyProvider(settings), config);
    // Never cached: each API call asks the function.
    expect(asked).toBeGreaterThan(5);
    expect(standIn.machines()).toEqual([]);
    noCanary(JSON.stringify(standIn.requests), JSON.stringify(standIn.bodies));
  }, 120_000);

  it("tokenSecret through the resolver: asked once per provider, not before the first API call", async () => {
    const asked: string[] = [];
    const make = () =>
      createFlyProvider({
        baseUrl: standIn.baseUrl,
        env: { FLY_API_TOKEN: "not-this-one" },
        tokenSecret: "fly-api",
        secrets: async (ref) => {
          asked.push(ref.id);
          return ref.id === "fly-api" ? { token: TOKEN } : {};
        },
      });
    const idle = make();
    expect(idle.setupHint()).toBeNull();
    await idle.validateDestination({ config });
    expect(asked).toEqual([]);
    await roundTrip(make, config);
    expect(asked).toEqual(["fly-api", "fly-api"]);
    expect(standIn.machines()).toEqual([]);
  }, 120_000);

  it("agent mode: the agent's token is derived from a resolver-given API token, also after resume", async () => {
    const asked: string[] = [];
    await roundTrip(
      () =>
        createFlyProvider({
          baseUrl: agentStandIn.baseUrl,
          env: {},
          tokenSecret: "fly-api",
          secrets: async (ref) => {
            asked.push(ref.id);
            return { token: TOKEN };
          },
        }),
      {
        app: "roder-agent",
        image: "roder-runner-agent:local",
        image_has_agent: true,
        agent_command: image.command,
        agent_url: agentStandIn.appUrl,
      },
    );
    expect(asked).toEqual(["fly-api", "fly-api"]);
    expect(agentStandIn.machines()).toEqual([]);
    noCanary(JSON.stringify(agentStandIn.requests), JSON.stringify(agentStandIn.bodies));
  }, 180_000);

  it("a rotated token is picked up: the resolver's kept value is dropped after a 401, asked once again", async () => {
    const front = await rotatingFront(standIn, OLD);
    let current = OLD;
    const asked: string[] = [];
    const provider = createFlyProvider({
      baseUrl: front.url,
      env: {},
      // No client-side pacing: the three calls below reach the API together.
      rateLimit: false,
      tokenSecret: "fly-api",
      secrets: async (ref) => {
        asked.push(ref.id);
        return { token: current };
      },
    });
    const session = await provider.createSession({ config });
    try {
      expect(asked).toHaveLength(1);
      front.rotate(NEW);
      current = NEW;
      // Three calls refused together (all sent with the kept value): the secret is asked again once for all.
      front.holdRefusals = 3;
      const outs = await Promise.all(
        ["a", "b", "c"].map((x) => session.runCommand({ program: "echo", args: [x] })),
      );
      expect(outs.map((o) => o.stdout)).toEqual(["a\n", "b\n", "c\n"]);
      expect(front.refused).toBe(3);
      expect(asked).toHaveLength(2);
      front.holdRefusals = 1;
      // The store rotates again to a value the API does not take: one more ask, then a typed 401 naming the route.
      front.rotate(`${NEW}-x`);
      const error = await thrown(() => session.runCommand({ program: "true" }));
      expect(ProviderApiError.isInstance(error) && error.statusCode).toBe(401);
      expect(String(error)).toMatch(/check tokenSecret 'fly-api'/);
      expect(asked).toHaveLength(3);
      expect(front.refused).toBe(5);
      noCanary(errorText(error));
      front.rotate(NEW);
    } finally {
      await session.close();
    }
    expect(standIn.machines()).toEqual([]);
  }, 120_000);

  it("a rotated token is picked up: a token function answering the new value after a 401", async () => {
    const front = await rotatingFront(standIn, OLD);
    let current = OLD;
    const provider = createFlyProvider({ baseUrl: front.url, env: {}, token: async () => current });
    const session = await provider.createSession({ config });
    try {
      // The API refuses the old token before the store hands out the new one.
      front.rotate(NEW);
      front.onRefuse = () => {
        current = NEW;
      };
      expect((await session.runCommand({ program: "echo", args: ["rotated"] })).stdout).toBe("rotated\n");
      expect(front.refused).toBe(1);
      // A string token cannot change: its 401 is not tried again.
      const fixed = createFlyProvider({ baseUrl: front.url, env: {}, token: OLD });
      const error = await thrown(() => fixed.createSession({ config }));
      expect(String(error)).toMatch(/create machine: unauthorized \(check the token option\)/);
      expect(front.refused).toBe(2);
      noCanary(errorText(error));
    } finally {
      await session.close();
    }
  }, 120_000);

  it("a resolver that throws or answers nothing, or a function that fails: typed, non-retryable, naming the route", async () => {
    const make = (settings: FlyProviderSettings) =>
      createFlyProvider({ baseUrl: standIn.baseUrl, env: {}, ...settings });
    const requests = standIn.requests.length;
    const sealed = await thrown(() =>
      make({
        tokenSecret: "fly-api",
        secrets: async () => {
          throw new Error("vault sealed");
        },
      }).createSession({ config }),
    );
    expect(ProviderApiError.isInstance(sealed) && !sealed.isRetryable).toBe(true);
    expect(String(sealed)).toMatch(/the Fly API token: the secret resolver failed for tokenSecret 'fly-api'/);
    expect(String((sealed as Error).cause)).toMatch(/vault sealed/);
    const empty = await thrown(() =>
      make({ tokenSecret: "fly-api", secrets: async () => ({ token: "" }) }).createSession({ config }),
    );
    expect(ProviderApiError.isInstance(empty) && !empty.isRetryable).toBe(true);
    expect(String(empty)).toMatch(
      /tokenSecret 'fly-api' has no 'token' field in the secret resolver's answer and RODER_SECRET_FLY_API_TOKEN is not set/,
    );
    const failing = await thrown(() =>
      make({
        token: async () => {
          throw new Error("store down");
        },
      }).createSession({ config }),
    );
    expect(String(failing)).toMatch(/the Fly API token: the 'token' function failed/);
    const blank = await thrown(() => make({ token: () => "" }).createSession({ config }));
    expect(String(blank)).toMatch(/the 'token' function answered no value/);
    // Nothing reached the API.
    expect(standIn.requests.length).toBe(requests);
    expect(() => make({ token: TOKEN, tokenSecret: "fly-api" })).toThrow(
      /pass 'token' or 'tokenSecret', not both/,
    );
    expect(make({}).setupHint()).toMatch(/pass token or tokenSecret/);
  });

  it("tokenSecret without a resolver reads RODER_SECRET_<ID>_TOKEN (the sweeper too)", async () => {
    const sweeper = createFlySweeper({
      app: "roder-test",
      baseUrl: standIn.baseUrl,
      tokenSecret: "fly-api",
      env: { RODER_SECRET_FLY_API_TOKEN: TOKEN },
    });
    expect(await sweeper.listOwnedSessions({ owner: "nobody-here" })).toEqual([]);
  });
});
