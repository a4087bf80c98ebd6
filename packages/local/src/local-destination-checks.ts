import { existsSync } from "node:fs";
import {
  checkProviderId,
  confinePath,
  InvalidDestinationConfigError,
  parseMountUri,
  type RunnerDestination,
  RunnerError,
  type RunnerMount,
  UnsupportedCapabilityError,
} from "@roder/runner-contract";
import { resolveBucketCredentials } from "@roder/runner-storage";
import { type LocalDestinationConfig, parseLocalConfig } from "./local-config.js";
import { LOCAL_PROVIDER_ID } from "./local-session-info.js";
import type { LocalProviderContext } from "./local-session-setup.js";

// What a destination must be before anything is made for it: its config, the tools its isolation needs, its
// manifest entries and mounts (with their secrets).

/** The destination's config, once everything it asks for is checked (`validateDestination`, `createSession`). */
export async function validateLocalDestination(
  ctx: LocalProviderContext,
  d: RunnerDestination,
): Promise<LocalDestinationConfig> {
  checkProviderId(LOCAL_PROVIDER_ID, "destination", d.provider_id);
  const config = parseLocalConfig(d.config);
  await ctx.primeSecrets(d.config, d.default_manifest.mounts);
  if (config.isolation === "bwrap") {
    const rt = ctx.runtime();
    if (!rt.bwrap)
      throw new RunnerError(
        "missing_dependency",
        "isolation 'bwrap' needs bubblewrap, which is not installed: apt-get install bubblewrap",
      );
    // Commands enter the session's sandbox through its namespaces. Unprivileged, bubblewrap locks them behind a
    // nested user namespace that nothing outside can enter: one sandbox per session needs a root runner.
    if (process.getuid?.() !== 0)
      throw new UnsupportedCapabilityError({
        providerId: LOCAL_PROVIDER_ID,
        capability: "isolation 'bwrap'",
        message:
          "isolation 'bwrap' needs the runner to run as root on unix-local (commands enter the session's one sandbox; unprivileged, bubblewrap locks its namespaces behind a nested user namespace): run the runner as root, or use isolation 'none'",
      });
    if (!rt.setpriv || !rt.nsenter)
      throw new RunnerError(
        "missing_dependency",
        "isolation 'bwrap' needs setpriv and nsenter (util-linux): apt-get install util-linux",
      );
    if (config.network === "egress" && !rt.slirp4netns)
      throw new RunnerError(
        "missing_dependency",
        "network 'egress' needs slirp4netns, which is not installed: apt-get install slirp4netns (or set network 'none')",
      );
  }
  for (const e of d.default_manifest.entries) {
    confinePath(e.target, { root: "/workspace", access: "write" });
    if (!existsSync(e.source))
      throw new InvalidDestinationConfigError({
        providerId: LOCAL_PROVIDER_ID,
        message: `manifest entry source '${e.source}' does not exist on this host`,
      });
  }
  checkMounts(ctx, d.default_manifest.mounts);
  return config;
}

/** Mounts this host can make, at paths in the workspace, with their credentials at hand. */
function checkMounts(ctx: LocalProviderContext, mounts: readonly RunnerMount[]): void {
  const caps = ctx.capabilities().mounts;
  for (const m of mounts) {
    confinePath(m.path, { root: "/workspace", access: "write" });
    if (!caps[m.intent.kind]) {
      throw new RunnerError(
        "unsupported_capability",
        `unix-local cannot mount ${m.intent.kind} here (mount '${m.name}')`,
      );
    }
    if (m.intent.kind === "provider_native") {
      if (!m.intent.uri.startsWith("/"))
        throw new InvalidDestinationConfigError({
          providerId: LOCAL_PROVIDER_ID,
          message: `mount '${m.name}': a provider_native mount names an absolute host directory, got '${m.intent.uri}'`,
        });
    } else {
      parseMountUri(m.intent.uri, m.intent.kind);
      if (!m.intent.credentials) {
        throw new InvalidDestinationConfigError({
          providerId: LOCAL_PROVIDER_ID,
          message: `mount '${m.name}': a ${m.intent.kind} mount needs intent.credentials (an env secret ref)`,
        });
      }
      // Missing secrets fail here, before anything is created, naming the variables to set.
      resolveBucketCredentials(m.intent.kind, m.intent.credentials, ctx.env());
    }
  }
}
