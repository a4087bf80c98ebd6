import { join } from "node:path";
import { createLocalProvider } from "@roder/runner-local";
import { describeSandboxMounts, startFlyStandIn } from "@roder/runner-testkit";
import { createFlyProvider } from "./fly-provider.js";

// Buckets mounted inside the machine: the stand-in's machines run commands on this machine without bwrap
// (each bwrap command has its own mount namespace; a Fly Machine is one VM), so rclone's FUSE mount made by one
// exec is seen by the next, as on Fly.
describeSandboxMounts({
  name: "fly → Machines API stand-in",
  start: async (env, root) => {
    const standIn = await startFlyStandIn({
      backend: createLocalProvider(),
      backendDestination: (id) => ({
        id,
        provider_id: "unix-local",
        config: { isolation: "none", workspace_dir: join(root, ".machines"), read_roots: [root] },
        default_manifest: { entries: [], mounts: [] },
      }),
    });
    return {
      provider: createFlyProvider({
        baseUrl: standIn.baseUrl,
        env: { FLY_API_TOKEN: standIn.token, ...env },
      }),
      destination: (mounts) => ({
        id: "fly-mounts",
        provider_id: "fly",
        config: {
          app: "roder-test",
          image: "debian:bookworm-slim",
          workspace_root: root,
          allow_credentials_in_sandbox: true,
        },
        default_manifest: { entries: [], mounts },
      }),
      liveSandboxes: () => standIn.machines().filter((m) => m.state !== "destroyed").length,
      stop: () => standIn.stop(),
    };
  },
});
