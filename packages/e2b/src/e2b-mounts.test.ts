import { join } from "node:path";
import { createLocalProvider } from "@roder/runner-local";
import { describeSandboxMounts, startE2bStandIn } from "@roder/runner-testkit";
import { createE2bProvider } from "./e2b-provider.js";

// Buckets mounted inside the sandbox: the stand-in's sandboxes run commands on this machine without bwrap
// (each bwrap command has its own mount namespace; an E2B sandbox is one VM), so rclone's FUSE mount made by
// one command is seen by the next, as in E2B.
describeSandboxMounts({
  name: "e2b (official SDK) → E2B stand-in",
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
        id: "e2b-mounts",
        provider_id: "e2b",
        config: { template: "base", workspace_root: root, allow_credentials_in_sandbox: true },
        default_manifest: { entries: [], mounts },
      }),
      liveSandboxes: () => standIn.sandboxes().length,
      stop: () => standIn.stop(),
    };
  },
});
