import {
  CancelledError,
  InvalidDestinationConfigError,
  ProviderApiError,
  type RemoteRunnerSession,
  RunnerError,
  SessionNotFoundError,
} from "@roder/runner-contract";
import { createLocalProvider } from "@roder/runner-local";
import { type E2bStandIn, type E2bStandInOptions, startE2bStandIn } from "@roder/runner-testkit";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createE2bProvider, type E2bProviderSettings } from "./e2b-provider.js";

// Every check here runs against the stand-in with E2B's default behaviours (timeouts kill, base-plan limits),
// except where a check needs another plan limit and starts its own stand-in.
let standIn: E2bStandIn;
const provider = (settings: E2bProviderSettings = {}, s: E2bStandIn = standIn) =>
  createE2bProvider({
    apiUrl: s.apiUrl,
    sandboxUrl: s.sandboxUrl,
    domain: s.domain,
    env: { E2B_API_KEY: s.apiKey },
    ...settings,
  });
const destination = (config: Record<string, unknown> = {}) => ({
  id: "life",
  provider_id: "e2b",
  config: { template: "base", ...config },
  default_manifest: { entries: [], mounts: [] },
});
const opened: RemoteRunnerSession[] = [];
const open = async (config: Record<string, unknown>, settings: E2bProviderSettings = {}) => {
  const s = await provider(settings).createSession(destination(config));
  opened.push(s);
  return s;
};
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Waits (bounded by the test's timeout) for what the stand-in's own clock does. */
async function until(cond: () => boolean): Promise<void> {
  while (!cond()) await pause(100);
}
const caught = (p: Promise<unknown>) =>
  p.then(
    () => {
      throw new Error("expected a failure");
    },
    (e: unknown) => e,
  );
const withStandIn = async (options: Partial<E2bStandInOptions>, fn: (s: E2bStandIn) => Promise<void>) => {
  const s = await startE2bStandIn({ backend: createLocalProvider(), ...options });
  try {
    await fn(s);
  } finally {
    await s.stop();
  }
};

beforeAll(async () => {
  standIn = await startE2bStandIn({ backend: createLocalProvider() });
});
afterEach(async () => {
  standIn.faults.clear();
  for (const s of opened.splice(0)) await s.close().catch(() => {});
});
afterAll(async () => {
  await standIn.stop();
});

describe("e2b liveness: ttl_seconds is idle time", () => {
  it("an active session outlives its ttl: operations and a long quiet command extend the sandbox's timeout", async () => {
    const s = await open({ ttl_seconds: 3 });
    const id = s.state().session_id;
    // Used every 0.7 s for 6 s (twice the ttl).
    for (let i = 0; i < 9; i++) {
      expect((await s.runCommand({ command_id: `c${i}`, program: "echo", args: [String(i)] })).stdout).toBe(
        `${i}\n`,
      );
      await pause(700);
    }
    // A command that prints nothing for longer than the ttl is use too.
    const quiet = await s.runCommand({ command_id: "quiet", program: "sleep", args: ["7"] });
    expect(quiet.exit_code).toBe(0);
    await s.writeFile({ path: "still.txt", contents: new TextEncoder().encode("here") });
    expect(new TextDecoder().decode((await s.readFile({ path: "still.txt" })).contents)).toBe("here");
    expect(standIn.timedOut).not.toContain(id);
    expect(standIn.requests.filter((r) => r.path === `/sandboxes/${id}/timeout`).length).toBeGreaterThan(0);
  }, 60_000);

  it("a session idle past its ttl is gone: every call fails with SessionNotFoundError, close still works", async () => {
    const s = await open({ ttl_seconds: 2 });
    const id = s.state().session_id;
    await until(() => standIn.timedOut.includes(id));
    const run = await caught(s.runCommand({ command_id: "late", program: "true" }));
    expect(SessionNotFoundError.isInstance(run), String(run)).toBe(true);
    expect((run as Error).message).toContain(id);
    const read = await caught(s.readFile({ path: "x" }));
    expect(SessionNotFoundError.isInstance(read), String(read)).toBe(true);
    // Resuming a sandbox that is gone is typed too.
    const resumed = await caught(provider().resumeSession(s.state()));
    expect(SessionNotFoundError.isInstance(resumed), String(resumed)).toBe(true);
    await s.close();
    expect(standIn.sandboxes().map((x) => x.sandboxID)).not.toContain(id);
  }, 30_000);

  it("resumeSession sets the idle timeout (not E2B's 300 s) and keeps a used session alive", async () => {
    const s = await open({ ttl_seconds: 3 });
    const id = s.state().session_id;
    await s.pause!();
    const again = await provider().resumeSession(s.state());
    opened.push(again);
    const sbx = standIn.sandboxes().find((x) => x.sandboxID === id)!;
    expect(Date.parse(sbx.endAt)).toBeLessThanOrEqual(Date.now() + 3000);
    for (let i = 0; i < 7; i++) {
      expect((await again.runCommand({ command_id: `r${i}`, program: "true" })).exit_code).toBe(0);
      await pause(700);
    }
    expect(standIn.timedOut).not.toContain(id);
    await until(() => standIn.timedOut.includes(id));
    const late = await caught(again.runCommand({ command_id: "late", program: "true" }));
    expect(SessionNotFoundError.isInstance(late), String(late)).toBe(true);
  }, 60_000);
});

describe("e2b liveness: the plan's maximum length", () => {
  it("a busy session still goes at the plan's maximum length after its start, with SessionNotFoundError", async () => {
    const maxHours = 8 / 3600; // an 8 s plan, so that the check is short
    await withStandIn({ maxTimeoutHours: maxHours }, async (s) => {
      const session = await provider({ planMaxTimeoutHours: maxHours }, s).createSession(
        destination({ ttl_seconds: 2 }),
      );
      const id = session.state().session_id;
      let ok = 0;
      let failure: unknown;
      // Used every 0.3 s: the ttl alone would never end it; the plan's length does.
      for (let i = 0; i < 100 && failure === undefined; i++) {
        await session.runCommand({ command_id: `b${i}`, program: "true" }).then(
          () => ok++,
          (e: unknown) => {
            failure = e;
          },
        );
        await pause(300);
      }
      expect(SessionNotFoundError.isInstance(failure), String(failure)).toBe(true);
      expect((failure as Error).message).toContain("maximum sandbox length");
      expect(s.timedOut).toContain(id);
      // It outlived its 2 s ttl first (7 pauses of 0.3 s alone are longer): E2B capped the extensions at start + 8 s.
      const extensions = s.requests.filter((r) => r.path === `/sandboxes/${id}/timeout`);
      expect(extensions.length).toBeGreaterThan(0);
      expect(ok).toBeGreaterThanOrEqual(7);
      await session.close();
      expect(s.sandboxes()).toHaveLength(0);
    });
  }, 60_000);
});

describe("e2b error mapping by status and body", () => {
  it("an unknown template is an invalid destination naming it and leaves nothing; a gone snapshot is not_found", async () => {
    const e = await caught(provider().createSession(destination({ template: "no-such-tpl" })));
    expect(InvalidDestinationConfigError.isInstance(e), String(e)).toBe(true);
    expect((e as Error).message).toContain("template 'no-such-tpl'");
    expect((e as InvalidDestinationConfigError).issues[0]?.path).toBe("template");
    expect(standIn.sandboxes()).toHaveLength(0);
    // A snapshot that is gone is not a bad destination: not_found naming the snapshot.
    const s = await open({});
    const state = {
      ...s.state(),
      snapshot: { provider_id: "e2b", snapshot_id: "snap_gone", metadata: null },
    };
    const gone = await caught(provider().resumeSession(state));
    expect(RunnerError.isInstance(gone) && gone.code, String(gone)).toBe("not_found");
    expect((gone as Error).message).toContain("snapshot 'snap_gone'");
  });

  it("400 and 507 keep their status and are not retryable", async () => {
    // A provider told of a bigger plan than the account's: E2B's own 400.
    const e400 = await caught(
      provider({ planMaxTimeoutHours: 24 }).createSession(destination({ ttl_seconds: 7200 })),
    );
    expect(ProviderApiError.isInstance(e400) && e400.statusCode, String(e400)).toBe(400);
    expect((e400 as ProviderApiError).isRetryable).toBe(false);
    expect((e400 as Error).message).toContain("Timeout cannot be greater than 1 hours");
    const s = await open({});
    standIn.faults.set({ status: 507, match: /POST \/files$/ });
    const e507 = await caught(s.writeFile({ path: "big.bin", contents: new Uint8Array(16) }));
    expect(ProviderApiError.isInstance(e507) && e507.statusCode, String(e507)).toBe(507);
    expect((e507 as ProviderApiError).isRetryable).toBe(false);
  });

  it("429 past the plan's concurrency: retried with backoff, then a typed error naming the limit; cancellable", async () => {
    await withStandIn({ maxConcurrentSandboxes: 1 }, async (s) => {
      const first = await provider({}, s).createSession(destination());
      try {
        const e = await caught(provider({ rateLimitRetries: 2 }, s).createSession(destination()));
        expect(ProviderApiError.isInstance(e) && e.statusCode, String(e)).toBe(429);
        expect((e as Error).message).toContain("maximum number of concurrent E2B sandboxes (1)");
        const refused = s.requests.filter((r) => r.path === "/v2/sandboxes" && r.status === 429);
        expect(refused).toHaveLength(3);
        // An abort during the backoff ends the retries with CancelledError, not the 429.
        const ac = new AbortController();
        const pending = caught(
          provider({ rateLimitRetries: 1000 }, s).createSession(destination(), { signal: ac.signal }),
        );
        await until(() => s.requests.filter((r) => r.status === 429).length >= 4);
        ac.abort();
        const cancelled = await pending;
        expect(CancelledError.isInstance(cancelled), String(cancelled)).toBe(true);
        expect(s.sandboxes()).toHaveLength(1);
      } finally {
        await first.close();
      }
      const later = await provider({}, s).createSession(destination());
      await later.close();
      expect(s.sandboxes()).toHaveLength(0);
    });
  }, 60_000);

  it("a 429 with Retry-After is waited out before the next attempt", async () => {
    standIn.faults.set({ status: 429, retryAfterSeconds: 1, match: /POST \/v2\/sandboxes$/ });
    const s = await open({});
    expect((await s.runCommand({ command_id: "c", program: "echo", args: ["ok"] })).stdout).toBe("ok\n");
    const creates = standIn.requests.filter((r) => r.method === "POST" && r.path === "/v2/sandboxes");
    const [refused, accepted] = creates.slice(-2);
    expect(refused?.status).toBe(429);
    expect(accepted?.status).toBe(201);
    expect(accepted!.at - refused!.at).toBeGreaterThanOrEqual(950);
  });
});

describe("e2b config against the plan's documented limits", () => {
  it("refuses ttl_seconds over the plan's maximum before anything is created, naming the limit", async () => {
    const before = standIn.requests.length;
    const e = await caught(provider().createSession(destination({ ttl_seconds: 7200 })));
    expect(InvalidDestinationConfigError.isInstance(e), String(e)).toBe(true);
    expect((e as Error).message).toContain("maximum sandbox timeout of 1 hours");
    expect((e as Error).message).toContain("ttl_seconds 7200");
    expect((e as InvalidDestinationConfigError).issues[0]?.path).toBe("ttl_seconds");
    expect(standIn.requests.length).toBe(before);
    // A Pro plan's limit, from settings or the environment.
    await provider({ planMaxTimeoutHours: 24 }).validateDestination(destination({ ttl_seconds: 7200 }));
    await provider({
      env: { E2B_API_KEY: standIn.apiKey, RODER_E2B_PLAN_MAX_HOURS: "2" },
    }).validateDestination(destination({ ttl_seconds: 7200 }));
    const bad = await caught(
      provider({
        env: { E2B_API_KEY: standIn.apiKey, RODER_E2B_PLAN_MAX_HOURS: "lots" },
      }).validateDestination(destination()),
    );
    expect((bad as Error).message).toContain("RODER_E2B_PLAN_MAX_HOURS");
  });
});
