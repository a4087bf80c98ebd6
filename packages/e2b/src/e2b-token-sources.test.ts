import { ProviderApiError } from "@roder/runner-contract";
import { createLocalProvider } from "@roder/runner-local";
import {
  createSecretCanaries,
  type E2bStandIn,
  errorText,
  startE2bStandIn,
  startRotatingCredentialFront,
  thrown,
} from "@roder/runner-testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createE2bProvider, type E2bProviderSettings } from "./e2b-provider.js";
import { createE2bSweeper } from "./e2b-sweeper.js";

// Issue 20 item 3: the E2B API key from an async function or from the secret resolver (`apiKeySecret`), asked
// before each SDK call that reaches E2B's API (create, connect, timeout, pause, kill, snapshot), resumed by a second
// provider instance; a rotated key is picked up (one more attempt after E2B refuses it). Every key is a canary.
const canaries = createSecretCanaries();
const KEY = canaries.make("e2b_tokencanary");
const OLD = canaries.make("e2b_oldcanary");
const NEW = canaries.make("e2b_newcanary");
const config = { template: "base" };

/**
 * A rotation in front of the stand-in's control plane (its key is fixed), refusing as E2B does. The sandboxes'
 * daemon (envd) is reached directly, with its own access token, as on E2B.
 */
const rotatingFront = (target: E2bStandIn, initial: string) =>
  startRotatingCredentialFront({
    target: target.apiUrl,
    header: "x-api-key",
    initial,
    targetCredential: target.apiKey,
    refusal: { status: 401, body: { code: 401, message: "Invalid API key" } },
  });

let standIn: E2bStandIn;
beforeAll(async () => {
  standIn = await startE2bStandIn({ backend: createLocalProvider(), apiKey: KEY });
});
afterAll(async () => {
  await standIn?.stop();
});

const urls = (apiUrl = standIn.apiUrl) => ({
  apiUrl,
  sandboxUrl: standIn.sandboxUrl,
  domain: standIn.domain,
});
const live = () => standIn.sandboxes();

const noCanary = canaries.expectAbsent;

/** Create, run a command, pause, resume in a second provider instance, run there, close there. */
async function roundTrip(make: () => ReturnType<typeof createE2bProvider>) {
  const first = make();
  expect(first.setupHint()).toBeNull();
  const session = await first.createSession({ config });
  let closed = false;
  try {
    const made = await session.runCommand({ program: "sh", args: ["-c", "echo made > f.txt; cat f.txt"] });
    expect(made.stdout).toBe("made\n");
    await session.pause();
    const again = await make().resumeSession(JSON.parse(JSON.stringify(session.state())));
    expect((await again.runCommand({ program: "cat", args: ["f.txt"] })).stdout).toBe("made\n");
    const bad = await thrown(() => again.readFile({ path: "missing.txt" }));
    noCanary(JSON.stringify(session.state()), JSON.stringify(again.state()), errorText(bad));
    await again.close();
    closed = true;
  } finally {
    if (!closed) await session.close();
  }
}

describe("the E2B API key from a function or a secret resolver", () => {
  it("an async key function: asked per API call, create → run → pause → resume elsewhere → close", async () => {
    let asked = 0;
    const settings: E2bProviderSettings = {
      ...urls(),
      env: {},
      apiKey: async () => {
        asked++;
        await new Promise((r) => setTimeout(r, 1));
        return KEY;
      },
    };
    await roundTrip(() => createE2bProvider(settings));
    // create, pause, connect, kill: each asked the function.
    expect(asked).toBeGreaterThanOrEqual(4);
    expect(live()).toEqual([]);
    noCanary(JSON.stringify(standIn.requests));
  }, 120_000);

  it("apiKeySecret through the resolver: asked once per provider, not before the first API call", async () => {
    const asked: string[] = [];
    const make = () =>
      createE2bProvider({
        ...urls(),
        env: { E2B_API_KEY: "e2b_notthisone" },
        apiKeySecret: "e2b",
        secrets: async (ref) => {
          asked.push(ref.id);
          return ref.id === "e2b" ? { api_key: KEY } : {};
        },
      });
    const idle = make();
    expect(idle.setupHint()).toBeNull();
    await idle.validateDestination({ config });
    expect(asked).toEqual([]);
    await roundTrip(make);
    expect(asked).toEqual(["e2b", "e2b"]);
    expect(live()).toEqual([]);
  }, 120_000);

  it("a rotated key is picked up: the resolver's kept value is dropped after a 401, asked once again", async () => {
    const front = await rotatingFront(standIn, OLD);
    let current = OLD;
    const asked: string[] = [];
    const provider = createE2bProvider({
      ...urls(front.url),
      env: {},
      apiKeySecret: "e2b",
      secrets: async (ref) => {
        asked.push(ref.id);
        return { api_key: current };
      },
    });
    const session = await provider.createSession({ config });
    let closed = false;
    try {
      expect(asked).toHaveLength(1);
      front.rotate(NEW);
      current = NEW;
      // Pause reaches E2B's API with the key of that call, not the one the SDK's sandbox was made with.
      await session.pause();
      expect(front.refused).toBe(1);
      expect(asked).toHaveLength(2);
      const resumed = await provider.resumeSession(session.state());
      expect(asked).toHaveLength(2);
      expect((await resumed.runCommand({ program: "echo", args: ["rotated"] })).stdout).toBe("rotated\n");
      // The store rotates again to a key E2B does not take: one more ask, then a typed 401 naming the route.
      front.rotate(`${NEW}x`);
      const error = await thrown(() => resumed.snapshot());
      expect(ProviderApiError.isInstance(error) && error.statusCode).toBe(401);
      expect(String(error)).toMatch(/E2B refused the API key \(set apiKeySecret 'e2b'\)/);
      expect(asked).toHaveLength(3);
      expect(front.refused).toBe(3);
      noCanary(errorText(error), JSON.stringify(resumed.state()));
      front.rotate(NEW);
      await resumed.close();
      closed = true;
    } finally {
      if (!closed) await session.close();
    }
    expect(live()).toEqual([]);
  }, 120_000);

  it("a rotated key is picked up: a key function answering the new value after a 401 (close kills)", async () => {
    const front = await rotatingFront(standIn, OLD);
    let current = OLD;
    const provider = createE2bProvider({ ...urls(front.url), env: {}, apiKey: async () => current });
    const session = await provider.createSession({ config });
    try {
      expect((await session.runCommand({ program: "echo", args: ["ok"] })).stdout).toBe("ok\n");
      // E2B refuses the old key before the store hands out the new one.
      front.rotate(NEW);
      front.onRefuse = () => {
        current = NEW;
      };
      await session.close();
      expect(front.refused).toBe(1);
      expect(live()).toEqual([]);
      // A string key cannot change: its 401 is not tried again.
      const fixed = createE2bProvider({ ...urls(front.url), env: {}, apiKey: OLD });
      const error = await thrown(() => fixed.createSession({ config }));
      expect(String(error)).toMatch(/create sandbox: E2B refused the API key \(set the apiKey option\)/);
      expect(front.refused).toBe(2);
      noCanary(errorText(error));
    } finally {
      await session.close();
    }
  }, 120_000);

  it("a resolver that throws or answers nothing, or a function that fails: typed, non-retryable, naming the route", async () => {
    const make = (settings: E2bProviderSettings) => createE2bProvider({ ...urls(), env: {}, ...settings });
    const requests = standIn.requests.length;
    const sealed = await thrown(() =>
      make({
        apiKeySecret: "e2b",
        secrets: async () => {
          throw new Error("vault sealed");
        },
      }).createSession({ config }),
    );
    expect(ProviderApiError.isInstance(sealed) && !sealed.isRetryable).toBe(true);
    expect(String(sealed)).toMatch(/the E2B API key: the secret resolver failed for apiKeySecret 'e2b'/);
    expect(String((sealed as Error).cause)).toMatch(/vault sealed/);
    const empty = await thrown(() =>
      make({ apiKeySecret: "e2b", secrets: async () => ({ token: KEY }) }).createSession({ config }),
    );
    expect(ProviderApiError.isInstance(empty) && !empty.isRetryable).toBe(true);
    expect(String(empty)).toMatch(
      /apiKeySecret 'e2b' has no 'api_key' field in the secret resolver's answer and RODER_SECRET_E2B_API_KEY is not set/,
    );
    noCanary(errorText(empty));
    const failing = await thrown(() =>
      make({
        apiKey: async () => {
          throw new Error("store down");
        },
      }).createSession({ config }),
    );
    expect(String(failing)).toMatch(/the E2B API key: the 'apiKey' function failed/);
    // Nothing reached E2B.
    expect(standIn.requests.length).toBe(requests);
    expect(() => make({ apiKey: KEY, apiKeySecret: "e2b" })).toThrow(
      /pass 'apiKey' or 'apiKeySecret', not both/,
    );
    expect(make({}).setupHint()).toMatch(/pass apiKey or apiKeySecret/);
  });

  it("apiKeySecret without a resolver reads RODER_SECRET_<ID>_API_KEY (the sweeper too)", async () => {
    const sweeper = createE2bSweeper({
      ...urls(),
      apiKeySecret: "e2b",
      env: { RODER_SECRET_E2B_API_KEY: KEY },
    });
    expect(await sweeper.listOwnedSessions({ owner: "nobody-here" })).toEqual([]);
  });
});
