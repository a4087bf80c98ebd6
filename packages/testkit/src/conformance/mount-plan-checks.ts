// Mount planning before create.
import { MountPlanEntrySchema, type RunnerDestination, RunnerError } from "@roder/runner-contract";
import { expect } from "vitest";
import { type ConformanceSuite, errorText } from "./conformance-suite.js";

/** Every mount kind is planned in agreement with the capabilities and validateDestination. */
export function mountPlanChecks(suite: ConformanceSuite): void {
  const { check, options, secrets } = suite;
  check("plans every mount kind before create, in agreement with validateDestination", async () => {
    const planMounts = options.planMounts ?? ((d: RunnerDestination) => suite.provider.planMounts(d));
    const caps = suite.provider.capabilities();
    const uris: Record<string, string> = {
      s3: "s3://plan-bucket/p",
      r2: "r2://plan-bucket/p",
      gcs: "gs://plan-bucket/p",
      azure_blob: "azure://acct/container/p",
      box_storage: "box://0",
    };
    for (const [kind, supported] of Object.entries(caps.mounts)) {
      if (kind === "provider_native") continue;
      const d: RunnerDestination = {
        ...suite.destination,
        default_manifest: {
          entries: [],
          mounts: [
            {
              name: `m-${kind}`,
              path: "mnt/m",
              read_only: true,
              intent: { kind: kind as never, uri: uris[kind]!, credentials: { id: "plan-check" } },
            },
          ],
        },
      };
      const plan = planMounts(d).map((p) => MountPlanEntrySchema.parse(p));
      expect(plan, kind).toHaveLength(1);
      expect(plan[0]!.name).toBe(`m-${kind}`);
      expect(
        plan[0]!.strategy === "unsupported",
        `${kind}: plan ${plan[0]!.strategy}, capability ${supported}`,
      ).toBe(!supported);
      if (plan[0]!.strategy === "fuse-in-sandbox") expect(plan[0]!.credentials_in_sandbox).toBe(true);
      const e = await suite.provider.validateDestination(d).then(
        () => null,
        (x: unknown) => x,
      );
      // Refused by the destination (credentials inside the sandbox not allowed): create refuses it too.
      if (plan[0]!.strategy === "refused")
        expect(RunnerError.isInstance(e) && e.code === "credentials_in_sandbox", `${kind}: ${e}`).toBe(true);
      else if (!supported)
        expect(RunnerError.isInstance(e) && e.code === "unsupported_capability", `${kind}: ${e}`).toBe(true);
      // Supported: it may only fail for the credential variables the plan names (not set here).
      else if (e !== null) {
        expect(
          RunnerError.isInstance(e) &&
            ["missing_secret", "invalid_secret", "missing_dependency"].includes(e.code),
          `${kind}: ${e}`,
        ).toBe(true);
        for (const secret of secrets) expect(errorText(e)).not.toContain(secret);
      }
    }
  });
}
