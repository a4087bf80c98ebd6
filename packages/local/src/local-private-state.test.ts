import { chownSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RunnerError, type RunnerSessionState } from "@roder/runner-contract";
import { afterAll, describe, expect, it } from "vitest";
import { createLocalProvider } from "./local-provider.js";

const base = mkdtempSync(join(tmpdir(), "roder-private-"));
afterAll(() => rmSync(base, { recursive: true, force: true }));
const dest = {
  id: "p",
  provider_id: "unix-local",
  config: {},
  default_manifest: { entries: [], mounts: [] },
};
const root = process.getuid?.() === 0;

describe("unix-local: state on disk is private and owned", () => {
  it.skipIf(!root)(
    "refuses a workspace root, registry or snapshot store another user made first",
    async () => {
      for (const which of ["root", "registryDir", "snapshotDir"] as const) {
        const planted = join(base, `planted-${which}`);
        mkdirSync(planted, { mode: 0o777 });
        chownSync(planted, 65534, 65534);
        const settings = {
          root: join(base, `ws-${which}`),
          registryDir: join(base, `reg-${which}`),
          snapshotDir: join(base, `snap-${which}`),
          [which]: planted,
        };
        const provider = createLocalProvider(settings);
        const attempt = async () => {
          const s = await provider.createSession(dest);
          try {
            await s.snapshot();
          } finally {
            await s.close();
          }
        };
        const e = await attempt().then(
          () => null,
          (error) => error,
        );
        expect(RunnerError.isInstance(e) && e.code === "unsafe_directory", `${which}: ${e}`).toBe(true);
        expect(String(e)).toContain("owned by uid 65534");
      }
    },
  );

  it("snapshots are 0600 in a 0700 store, deleted on request; a ref or state naming another file is refused", async () => {
    const snapshotDir = join(base, "store");
    const provider = createLocalProvider({
      snapshotDir,
      registryDir: join(base, "reg"),
      root: join(base, "ws"),
    });
    const s = await provider.createSession(dest);
    await s.writeFile({ path: "a.txt", contents: "kept" });
    const ref = await s.snapshot();
    const state = s.state();
    await s.close();
    const archive = (ref.metadata as { archive: string }).archive;
    expect(statSync(archive).mode & 0o777).toBe(0o600);
    expect(statSync(snapshotDir).mode & 0o777).toBe(0o700);
    // A hostile state pointing the restore at a host file: refused, the file untouched.
    const victim = join(base, "victim.txt");
    writeFileSync(victim, "precious");
    const evil = {
      ...state,
      snapshot: { ...ref, metadata: { ...(ref.metadata as object), archive: victim } },
    } as RunnerSessionState;
    await expect(provider.resumeSession(evil)).rejects.toSatisfy((e) => RunnerError.isInstance(e));
    await expect(
      provider.deleteSnapshot({ ...ref, metadata: { ...(ref.metadata as object), archive: victim } }),
    ).rejects.toSatisfy((e) => RunnerError.isInstance(e));
    expect(statSync(victim).size).toBe(8);
    // The real one restores, then is deleted (twice: idempotent).
    const restored = await provider.resumeSession({ ...state, snapshot: ref });
    expect(new TextDecoder().decode((await restored.readFile({ path: "a.txt" })).contents)).toBe("kept");
    await restored.close();
    await provider.deleteSnapshot(ref);
    await provider.deleteSnapshot(ref);
    expect(() => statSync(archive)).toThrow();
  });
});
