import { type RemoteRunnerProvider, RunnerError } from "@roder/runner-contract";
import { createE2bProvider } from "@roder/runner-e2b";
import { createFlyProvider } from "@roder/runner-fly";
import { createHttpRunnerProvider } from "@roder/runner-http";
import { createLocalProvider } from "@roder/runner-local";
import fc from "fast-check";
import { describe, expect, it } from "vitest";

// Hostile destination configs for every provider: validateDestination resolves or rejects with a typed
// RunnerError (never a TypeError, never a hang), and a secret-looking value put in the config is refused
// without being echoed.
const CANARY = "cfg-canary-93f1c0de";
const providers: Array<[string, RemoteRunnerProvider, Record<string, unknown>]> = [
  ["unix-local", createLocalProvider(), { isolation: "none" }],
  [
    "fly",
    createFlyProvider({ env: { FLY_API_TOKEN: "t" } }),
    { app: "roder-test", image: "debian:bookworm-slim" },
  ],
  ["e2b", createE2bProvider({ env: { E2B_API_KEY: "k" } }), { template: "base" }],
  [
    "http",
    createHttpRunnerProvider({ baseUrl: "http://127.0.0.1:9", env: { RODER_RUNNER_HTTP_TOKEN: "t" } }),
    {},
  ],
];
const KEYS = [
  "isolation",
  "workspace_path",
  "ttl_seconds",
  "output_limit_bytes",
  "read_roots",
  "app",
  "image",
  "region",
  "guest",
  "template",
  "metadata",
  "workspace_root",
  "base_url",
  "backend_config",
  "artifacts",
  "timeout_ms",
  "__proto__",
  "constructor",
];
const hostileValue = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }),
  fc.constantFrom(
    "../../etc",
    "/",
    "\u0000",
    "a".repeat(5000),
    -1,
    1e308,
    Number.MAX_SAFE_INTEGER + 2,
    "ü∂ƒ",
  ),
);
let cases = 0;

async function typed(p: RemoteRunnerProvider, config: unknown): Promise<unknown> {
  cases++;
  const e = await p
    .validateDestination({
      id: "fuzz",
      provider_id: p.id,
      config: config as never,
      default_manifest: { entries: [], mounts: [] },
    })
    .then(
      () => null,
      (x: unknown) => x,
    );
  if (e !== null)
    expect(RunnerError.isInstance(e), `${p.id}: ${(e as Error)?.name}: ${(e as Error)?.message}`).toBe(true);
  return e;
}

describe("destination configs under hostile input (fast-check)", () => {
  for (const [id, provider, valid] of providers) {
    it(`${id}: random configs get a typed answer`, async () => {
      await fc.assert(
        fc.asyncProperty(fc.jsonValue({ maxDepth: 3 }), async (c) => void (await typed(provider, c))),
        { seed: 20261126, numRuns: 150 },
      );
      await fc.assert(
        fc.asyncProperty(
          fc.dictionary(fc.constantFrom(...KEYS), hostileValue, { maxKeys: 4 }),
          async (extra) => {
            await typed(provider, { ...valid, ...extra });
          },
        ),
        { seed: 20261127, numRuns: 250 },
      );
    });

    it(`${id}: a secret in the config is refused and never echoed`, async () => {
      for (const key of ["token", "api_key", "secret", "password", "aws_secret_access_key"]) {
        for (const config of [
          { ...valid, [key]: CANARY },
          { ...valid, metadata: { [key]: CANARY } },
        ]) {
          const e = await typed(provider, config);
          if (e === null) continue; // a provider may ignore unknown nested keys; it must not echo them either
          const text = `${(e as Error).message} ${JSON.stringify(e)} ${(e as Error).stack}`;
          expect(text).not.toContain(CANARY);
        }
        const top = await typed(provider, { ...valid, [key]: CANARY });
        expect(top, `${id} accepted a '${key}' in its config`).not.toBeNull();
      }
    });
  }

  it("reports how many cases ran", () => {
    console.log(`destination-config fuzz: ${cases} cases over ${providers.length} providers`);
    expect(cases).toBeGreaterThan(1600);
  });
});
