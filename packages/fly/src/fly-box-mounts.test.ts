import { join } from "node:path";
import { createLocalProvider } from "@roder/runner-local";
import { describeSandboxMounts, startFlyStandIn } from "@roder/runner-testkit";
import { createFlyProvider } from "./fly-provider.js";

// Box mounted inside the machine: rclone runs in the stand-in's machine (on this host's network, as the
// machines of the Fly stand-in do) and reaches the Box stand-in through its intercepting proxy on loopback.
describeSandboxMounts({
  name: "fly → Machines API stand-in",
  kind: "box_storage",
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
        id: "fly-box-mounts",
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
