import { randomUUID } from "node:crypto";
import {
  type RemoteRunnerProvider,
  type RemoteRunnerSession,
  type RunnerDestination,
  type RunnerLimits,
  RunnerLimitsSchema,
} from "@roder/runner-contract";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { abortChecks } from "./abort-checks.js";
import { secretAndCapabilityChecks } from "./capability-checks.js";
import { commandChecks, commandControlChecks, streamingChecks } from "./command-checks.js";
import type { ConformanceSuite } from "./conformance-suite.js";
import { fileChecks } from "./file-checks.js";
import { fileScopeChecks } from "./file-scope-checks.js";
import { fileStreamChecks } from "./file-stream-checks.js";
import { interactiveChecks } from "./interactive-checks.js";
import { closeChecks, declarationChecks, persistenceChecks, sweeperChecks } from "./lifecycle-checks.js";
import { limitsChecks } from "./limits-checks.js";
import { mountPlanChecks } from "./mount-plan-checks.js";
import { observerChecks } from "./observer-checks.js";
import { portChecks } from "./port-checks.js";
import type { RunnerConformanceOptions } from "./runner-conformance-options.js";

export type { RunnerConformanceOptions } from "./runner-conformance-options.js";

/**
 * The contract, checked against any provider: one vitest `describe` per call. Every provider package runs it
 * against its backend (the real thing or a local stand-in that speaks its wire protocol).
 *
 * The checks share one session and run in the order registered here; each group lives in its own module.
 */
export function describeRunnerConformance(options: RunnerConformanceOptions): void {
  const skip = new Set(options.skip ?? []);
  const check = (name: string, fn: () => Promise<void>, timeout?: number) =>
    skip.has(name) ? it.skip(name, fn) : it(name, fn, timeout);
  const secrets = options.secretValues ?? [];
  const large = options.largeFileBytes ?? 4 * 1024 * 1024;

  describe(`runner conformance: ${options.name}`, () => {
    let provider: RemoteRunnerProvider;
    let destination: RunnerDestination;
    let session: RemoteRunnerSession;
    let root: string;
    const opened: RemoteRunnerSession[] = [];
    let n = 0;
    const id = () => `c${++n}-${randomUUID().slice(0, 8)}`;
    const sh = (script: string, extra: Record<string, unknown> = {}) =>
      session.runCommand({ command_id: id(), program: "sh", args: ["-c", script], ...extra });
    const suite: ConformanceSuite = {
      options,
      check,
      secrets,
      large,
      opened,
      id,
      sh,
      get provider() {
        return provider;
      },
      get destination() {
        return destination;
      },
      get session() {
        return session;
      },
      get root() {
        return root;
      },
      limitsOf: (): RunnerLimits => {
        const l = options.limits ?? provider.limits(destination);
        expect(l, `no published limits for provider '${provider.id}'`).toBeTruthy();
        return RunnerLimitsSchema.parse(l);
      },
    };

    beforeAll(async () => {
      await options.setup?.();
      provider = await options.createProvider();
      destination =
        typeof options.destination === "function" ? await options.destination() : options.destination;
      session = await provider.createSession(destination);
      opened.push(session);
      const meta = session.state().metadata as { workspace_root?: unknown } | null;
      expect(typeof meta?.workspace_root, "state().metadata.workspace_root").toBe("string");
      root = meta!.workspace_root as string;
    });

    afterAll(async () => {
      for (const s of opened) await s.close().catch(() => {});
      await options.teardown?.();
    });

    declarationChecks(suite);
    commandChecks(suite);
    fileChecks(suite);
    fileStreamChecks({
      check,
      session: () => session,
      sh: (script) => sh(script),
      native: options.fileStreams === true,
      sandboxScope: options.fileScope === "sandbox",
    });
    fileScopeChecks(suite);
    interactiveChecks(suite);
    commandControlChecks(suite);
    portChecks(suite);
    streamingChecks(suite);
    persistenceChecks(suite);
    limitsChecks(suite);
    abortChecks(suite);
    observerChecks(suite);
    sweeperChecks(suite);
    mountPlanChecks(suite);
    secretAndCapabilityChecks(suite);
    closeChecks(suite);
  });
}
