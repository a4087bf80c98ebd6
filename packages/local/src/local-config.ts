import {
  InvalidDestinationConfigError,
  parseProviderConfig,
  UnsupportedCapabilityError,
} from "@roder/runner-contract";
import { parseArtifactTarget } from "@roder/runner-storage";
import { z } from "zod";

/** `destination.config` of the `unix-local` provider. Persisted with the thread: no secrets here. */
export const LocalDestinationConfigSchema = z
  .object({
    /** Parent directory of session workspaces (and their owner tags). Default: the provider's `root`. */
    workspace_dir: z.string().min(1).optional(),
    /** `bwrap`: commands run under bubblewrap and see only the workspace (rw), the system (ro), their own /tmp. */
    isolation: z.enum(["none", "bwrap"]).default("none"),
    /**
     * Under bwrap, the absolute path at which commands see the workspace (e.g. `/workspace`, as a cloud sandbox
     * would have it). File paths and working directories are then runner paths under it.
     */
    workspace_path: z.string().startsWith("/").optional(),
    /**
     * The sandbox's network. `none`: its own namespace, loopback only. `egress` (the default under bwrap): its own
     * namespace with outbound traffic through slirp4netns; the host's loopback and link-local (cloud metadata)
     * addresses unreachable; port previews forwarded explicitly. `host`: the host's network (the only mode
     * without isolation, and under bwrap only when asked).
     */
    network: z.enum(["none", "egress", "host"]).optional(),
    /**
     * Kept for compatibility, no longer has an effect: every command of a session runs in the session's one
     * sandbox and PID namespace (so one command sees and signals another, as on a machine), never the host's.
     */
    bwrap_unshare_pid: z.boolean().default(true),
    /** Expiry written in the session's owner tag (seconds from creation), for `createLocalSweeper`. */
    ttl_seconds: z
      .number()
      .int()
      .positive()
      .default(24 * 3600),
    /** Delete the workspace on `close()`. */
    delete_on_close: z.boolean().default(true),
    /** Cap per output stream; past it the output is cut and marked. */
    output_limit_bytes: z
      .number()
      .int()
      .positive()
      .max(1024 * 1024 * 1024)
      .default(16 * 1024 * 1024),
    /** Where snapshots are stored. Default: `<tmp>/roder-local-snapshots`. */
    snapshot_dir: z.string().min(1).optional(),
    /** Extra host directories commands may read (bind-mounted read-only under bwrap). */
    read_roots: z.array(z.string().startsWith("/")).default(() => []),
    /** Artifact bucket (see @roder/runner-storage). */
    artifacts: z.unknown().optional(),
  })
  .strict();
export type LocalDestinationConfig = z.infer<typeof LocalDestinationConfigSchema>;

export function parseLocalConfig(config: unknown): LocalDestinationConfig {
  const parsed = parseProviderConfig(LocalDestinationConfigSchema, config, "unix-local");
  if (parsed.artifacts !== undefined) parseArtifactTarget("unix-local", parsed.artifacts);
  if (parsed.workspace_path && parsed.isolation !== "bwrap") {
    throw new InvalidDestinationConfigError({
      providerId: "unix-local",
      message: "workspace_path needs isolation 'bwrap' (the workspace is bind-mounted there)",
    });
  }
  const network = parsed.network ?? (parsed.isolation === "bwrap" ? "egress" : "host");
  if (parsed.isolation === "none" && network !== "host") {
    throw new UnsupportedCapabilityError({
      providerId: "unix-local",
      capability: `network '${network}'`,
      message: `network '${network}' needs isolation 'bwrap' (without isolation, commands share the host's network)`,
    });
  }
  return { ...parsed, network };
}
