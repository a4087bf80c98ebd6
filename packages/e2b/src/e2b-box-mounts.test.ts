import { join } from "node:path";
import { createLocalProvider } from "@roder/runner-local";
import { describeSandboxMounts, startE2bStandIn } from "@roder/runner-testkit";
import { createE2bProvider } from "./e2b-provider.js";

// Box mounted inside the sandbox: rclone runs in the stand-in's sandbox (on this host's network, as the
// sandboxes of the E2B stand-in are) and reaches the Box stand-in through its intercepting proxy on loopback.
describeSandboxMounts({
  name: "e2b (official SDK) → E2B stand-in",
  kind: "box_storage",
  start: async (env, root) => {
    const standIn = await startE2bStandIn({
      backend: createLocalProvider(),
      backendDestination: (id) => ({
        id,
        provider_id: "unix-local",
        config: { isolation: "none", workspace_dir: join(root, ".sandboxes"), read_roots: [root] },
        default_manifest: { entries: [], mounts: [] },
      }),
    });
    return {
      provider: createE2bProvider({
        apiUrl: standIn.apiUrl,
        sandboxUrl: standIn.sandboxUrl,
        domain: standIn.domain,
        env: { E2B_API_KEY: standIn.apiKey, ...env },
      }),
      destination: (mounts) => ({
        id: "e2b-box-mounts",
        provider_id: "e2b",
        config: { template: "base", workspace_root: root, allow_credentials_in_sandbox: true },
        default_manifest: { entries: [], mounts },
      }),
      liveSandboxes: () => standIn.sandboxes().length,
      stop: () => standIn.stop(),
    };
  },
});
