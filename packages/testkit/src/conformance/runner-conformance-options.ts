import type {
  MountPlanEntry,
  RemoteRunnerProvider,
  RunnerDestination,
  RunnerLimits,
  SweepableProvider,
} from "@roder/runner-contract";

type MaybePromise<T> = T | Promise<T>;

export interface RunnerConformanceOptions {
  /** Shown in the describe block. */
  name: string;
  createProvider: () => MaybePromise<RemoteRunnerProvider>;
  destination: RunnerDestination | (() => MaybePromise<RunnerDestination>);
  /** A second, independent provider instance for resume tests (default: `createProvider()` again). */
  createResumeProvider?: () => MaybePromise<RemoteRunnerProvider>;
  /** Secret values the provider was given: none may appear in `state()`, snapshots or errors. */
  secretValues?: string[];
  /** `reachable`: the preview URL is fetched from the host; `url-only`: only its shape is checked. */
  portPreview?: "reachable" | "url-only";
  /** Size of the large binary round trip (default 4 MiB). */
  largeFileBytes?: number;
  setup?: () => Promise<void>;
  teardown?: () => Promise<void>;
  /** Names of checks to skip (reported as skipped), for a backend that documents why. */
  skip?: string[];
  /**
   * What the session's file API and a command's `cwd` address: `workspace` (default) — confined to the
   * workspace and read roots, as `RemoteWorkspace` has it; `sandbox` — the sandbox's own view (absolute paths as
   * the sandbox sees them, relative ones against the workspace), on an isolated provider.
   */
  fileScope?: "workspace" | "sandbox";
  /**
   * Interactive commands the provider has: `stdin` (`startCommand({ stdin: true })`, `write`, `closeStdin`),
   * `pty` (stdin and `pty: { cols, rows }`, `resize`). Default: none (the checks are skipped).
   */
  interactive?: Array<"stdin" | "pty">;
  /**
   * The session has `readFileStream` and `writeFileStream` itself (files of any size with bounded memory). The
   * streamed-file checks run on every provider (through the contract's fallbacks); with this, the methods must
   * exist.
   */
  fileStreams?: boolean;
  /** The provider's published limits (default: `provider.limits(destination)`). */
  limits?: RunnerLimits;
  /**
   * Live sandboxes/sessions on the backend (machines, sandboxes, server sessions, workspace dirs): with it,
   * the suite proves an aborted or failed create leaves nothing behind.
   */
  countLiveSessions?: () => MaybePromise<number>;
  /**
   * Mount planning before create (default: `provider.planMounts(d)`): the suite checks the plan against its schema,
   * the capabilities and `validateDestination`.
   */
  planMounts?: (destination: RunnerDestination) => MountPlanEntry[];
  /** The provider's sweeper and the owner `createProvider()` tags sessions with: the suite lists and removes. */
  sweeper?: { owner: string; create: () => MaybePromise<SweepableProvider> };
}
