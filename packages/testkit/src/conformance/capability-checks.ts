// Secrets kept out of state and errors; capabilities the provider lacks refused typed.
import { codecs, RunnerError, UnsupportedCapabilityError } from "@roder/runner-contract";
import { expect } from "vitest";
import { type ConformanceSuite, errorText, thrown } from "./conformance-suite.js";

/** No secret in state() or errors; UnsupportedCapabilityError for every missing capability. */
export function secretAndCapabilityChecks(suite: ConformanceSuite): void {
  const { check, secrets } = suite;
  check("keeps secrets out of state() and errors", async () => {
    const state = codecs.RunnerSessionState.encode(suite.session.state());
    for (const s of secrets) expect(state).not.toContain(s);
    const e = await thrown(() => suite.session.readFile({ path: "does/not/exist" }));
    expect(RunnerError.isInstance(e)).toBe(true);
    for (const s of secrets) expect(errorText(e)).not.toContain(s);
  });

  check("throws UnsupportedCapabilityError for every capability it lacks", async () => {
    const caps = suite.provider.capabilities();
    if (!caps.artifact_export) {
      await suite.session.writeFile({ path: "artifact.txt", contents: new TextEncoder().encode("a") });
      const e = await thrown(() => suite.session.exportArtifact({ path: "artifact.txt", recursive: false }));
      expect(UnsupportedCapabilityError.isInstance(e), String(e)).toBe(true);
    }
    for (const [kind, ok] of Object.entries(caps.mounts)) {
      if (ok) continue;
      const uri = {
        s3: "s3://bucket-x/p",
        r2: "r2://bucket-x/p",
        gcs: "gs://bucket-x/p",
        azure_blob: "azure://acct/container/p",
        box_storage: "box://0",
        provider_native: "/tmp",
      }[kind]!;
      const e = await thrown(() =>
        suite.provider.validateDestination({
          ...suite.destination,
          default_manifest: {
            entries: [],
            mounts: [{ name: "m", path: "mnt/m", read_only: true, intent: { kind: kind as never, uri } }],
          },
        }),
      );
      expect(RunnerError.isInstance(e) && ["unsupported_capability"].includes(e.code), `${kind}: ${e}`).toBe(
        true,
      );
    }
  });
}
