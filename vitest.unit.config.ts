import { defineConfig } from "vitest/config";
import base from "./vitest.config.ts";

/**
 * The unit tests of every package: what CI runs on Node 22 and 24 besides the whole suite on Node 20
 * (scripts/test-node-matrix.sh). Pure logic, codecs and golden fixtures, and each provider's short path through
 * the local runner or its stand-in; no emulator, FUSE mount or load test.
 */
export const unitTests = [
  "packages/contract/src/**/*.test.ts",
  "packages/storage/src/mount-planning.test.ts",
  "packages/storage/src/rclone-plan.test.ts",
  "packages/local/src/local-short-path.test.ts",
  "packages/local/src/local-provider.test.ts",
  "packages/local/src/local-observer.test.ts",
  "packages/testkit/src/emulators/spawn-emulator.test.ts",
  "packages/http/src/http-server.test.ts",
  "packages/http/src/http-credentials.test.ts",
  "packages/fly/src/fly-credentials.test.ts",
  "packages/e2b/src/e2b-credentials.test.ts",
  "packages/e2b/src/e2b-standin.test.ts",
  "packages/testkit/src/gcs-standin/gcs-standin.test.ts",
  "packages/cli/src/destination-fuzz.test.ts",
];

export default defineConfig({
  ...base,
  test: {
    ...base.test,
    include: unitTests,
    // Spawns sh for each of its property runs: it tests sh's quoting, not Node, and is slow on a loaded machine.
    exclude: ["**/node_modules/**", "packages/contract/src/shell-quote.test.ts"],
  },
});
