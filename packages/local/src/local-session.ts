import { execFile } from "node:child_process";
import { createHash, randomUUID } from "node:crypto";
import { promises as fs, readdirSync, readFileSync, readlinkSync } from "node:fs";
import { basename, join, posix } from "node:path";
import { promisify } from "node:util";
import {
  argvToShell,
  CancelledError,
  CommandNotFoundError,
  checkRange,
  confinePath,
  type EnvSource,
  isWithin,
  OutputBudget,
  PathOutsideWorkspaceError,
  parseArtifactExportInput,
  parseCommandInput,
  parseFileWriteInput,
  parsePortInput,
  type RemoteRunnerSession,
  type RunnerArtifactExportRequestInput,
  type RunnerArtifactExportResult,
  type RunnerCallOptions,
  type RunnerCommandHandle,
  type RunnerCommandRequestInput,
  type RunnerCommandResult,
  RunnerError,
  type RunnerExportOptions,
  type RunnerFileReadRequest,
  type RunnerFileReadResult,
  type RunnerFileStream,
  type RunnerFileStreamRequest,
  type RunnerFileWriteInput,
  type RunnerMount,
  type RunnerPortRequestInput,
  type RunnerPortResult,
  type RunnerSessionState,
  type RunnerSnapshotRef,
  type RunnerStartCommandInput,
  SessionNotFoundError,
  sandboxViewPath,
} from "@roder/runner-contract";
import { exportLocalArtifact } from "./local-artifacts.js";
import { unmount } from "./local-binds.js";
import { sandboxCommand } from "./local-bwrap.js";
import { cgroupCommand, SESSION_MARKER } from "./local-cgroup.js";
import type { LocalDestinationConfig } from "./local-config.js";
import {
  type Confinement,
  confinedOpen,
  confinedRead,
  mapFsError,
  pinForExport,
  readChunks,
  resolveRunnerPath,
} from "./local-fs.js";
import { confinedWrite } from "./local-fs-write.js";
import { ensurePrivateDir } from "./local-private-dir.js";
import { type LocalCommandHandle, spawnCommand } from "./local-process.js";
import {
  endSandbox,
  type NetworkMode,
  type SandboxRecord,
  sandboxAlive,
  startBwrapSandbox,
} from "./local-sandbox.js";
import { forwardPort } from "./local-slirp.js";
import { tagPathFor, updateTag } from "./local-tags.js";
import { hostViewFiles, sandboxViewFiles, type ViewFiles } from "./local-view-files.js";

const run = promisify(execFile);
export const LOCAL_PROVIDER_ID = "unix-local";

function isTerminalSize(p: unknown): p is { cols: number; rows: number } {
  const { cols, rows } = (p ?? {}) as { cols?: unknown; rows?: unknown };
  const ok = (n: unknown) => Number.isInteger(n) && (n as number) >= 1 && (n as number) <= 65535;
  return ok(cols) && ok(rows);
}

/** Descendants of `pid` (itself first), from /proc's children lists. */
function descendants(pid: number): number[] {
  const out: number[] = [];
  const queue = [pid];
  while (queue.length && out.length < 256) {
    const p = queue.shift()!;
    out.push(p);
    try {
      for (const tid of readdirSync(`/proc/${p}/task`))
        for (const c of readFileSync(`/proc/${p}/task/${tid}/children`, "utf8").trim().split(/\s+/))
          if (c) queue.push(Number(c));
    } catch {}
  }
  return out;
}

/**
 * Resizes the terminal of a command started on a PTY: the first process below it whose stdin is a terminal
 * holds the PTY's slave; `stty` sets its size through that descriptor (the kernel sends SIGWINCH).
 */
async function resizeTerminal(pid: number, cols: number, rows: number): Promise<void> {
  for (const p of descendants(pid)) {
    let link = "";
    try {
      link = readlinkSync(`/proc/${p}/fd/0`);
    } catch {
      continue;
    }
    if (!/\/pts\/\d+$/.test(link)) continue;
    await run("stty", ["-F", `/proc/${p}/fd/0`, "cols", String(cols), "rows", String(rows)]);
    return;
  }
  throw new RunnerError("io_error", "the command's terminal is gone");
}

/** What a session needs to live and to be resumed: all of it goes into `state().metadata`; no secrets. */
export interface LocalSessionInfo {
  sessionId: string;
  destinationId: string;
  workspaceRoot: string;
  config: LocalDestinationConfig;
  /** Mount points to undo on close (bind mounts and read-only manifest entries), innermost last. */
  binds: string[];
  /** Manifest entry targets (absolute) that are read-only. */
  readOnlyEntries: string[];
  /** Manifest mounts, as declared (kind, uri, secret ref id only). */
  mounts: RunnerMount[];
  snapshotDir: string;
  registryDir: string;
  /** How the session's processes are held (its sandbox, or its cgroup): kept in the registry, never in state. */
  sandbox: SandboxRecord | null;
}

export interface LocalRuntime {
  env: EnvSource;
  bwrap: string | null;
  setpriv: string | null;
  nsenter: string | null;
  slirp4netns: string | null;
  /**
   * The operator's word that this host is the sandbox (`createLocalProvider({ hostIsSandbox })`, never a
   * destination's or a state's): sessions without isolation then address the host's whole view.
   */
  hostIsSandbox: boolean;
}

/** The runner's record of a live session: written by the runner into its own registry, trusted over any state. */
export interface RegistryEntry {
  workspace_root: string;
  created_at: string;
  binds: string[];
  read_only_entries: string[];
  sandbox: SandboxRecord | null;
  /** The config, mounts and snapshot store the session was made with (entries written before lack them). */
  config?: unknown;
  mounts?: unknown[];
  snapshot_dir?: string;
}

export function registryPath(registryDir: string, sessionId: string): string {
  return join(registryDir, `${sessionId}.json`);
}

/** Where a session's sandbox keeps its side files (slirp's API socket, resolv.conf): the registry's, private. */
export function sideDirOf(registryDir: string, sessionId: string): string {
  return join(registryDir, `${sessionId}.sandbox`);
}

export async function writeRegistry(info: LocalSessionInfo): Promise<void> {
  const entry: RegistryEntry = {
    workspace_root: info.workspaceRoot,
    created_at: new Date().toISOString(),
    binds: info.binds,
    read_only_entries: info.readOnlyEntries,
    sandbox: info.sandbox,
    config: info.config,
    mounts: info.mounts,
    snapshot_dir: info.snapshotDir,
  };
  await ensurePrivateDir(info.registryDir, "session registry");
  const file = registryPath(info.registryDir, info.sessionId);
  const tmp = `${file}.${randomUUID()}.tmp`;
  await fs.writeFile(tmp, JSON.stringify(entry), { mode: 0o600 });
  await fs.rename(tmp, file);
}

export function checkAborted(signal: AbortSignal | undefined, operation: string): void {
  if (signal?.aborted) throw new CancelledError({ operation });
}

/** Commands of every live session of this process, by session id, so any session object can attach. */
const COMMANDS = new Map<
  string,
  {
    running: Map<string, LocalCommandHandle>;
    ended: Map<string, LocalCommandHandle>;
    budget: OutputBudget;
  }
>();
/**
 * Output retained for late followers, per session, across its commands (running and ended): past it, the output
 * of ended commands is forgotten first (oldest first), then each running command drops its own oldest chunks.
 */
export const SESSION_RETAINED_OUTPUT_BYTES = 64 * 1024 * 1024;
/** Ended commands kept per session for a late `attachCommand` (their output and result). */
const ENDED_KEPT = 32;

function commandsOf(sessionId: string) {
  let c = COMMANDS.get(sessionId);
  if (!c) {
    const ended = new Map<string, LocalCommandHandle>();
    const budget = new OutputBudget(SESSION_RETAINED_OUTPUT_BYTES);
    budget.onOver = () => {
      for (const h of ended.values()) {
        if (budget.used <= budget.max) break;
        h.releaseOutput();
      }
    };
    c = { running: new Map(), ended, budget };
    COMMANDS.set(sessionId, c);
  }
  return c;
}

export class LocalSession implements RemoteRunnerSession {
  private readonly unmounts: Array<() => Promise<void>> = [];
  private closed = false;
  private readonly confinement: Confinement;

  private get running(): Map<string, LocalCommandHandle> {
    return commandsOf(this.info.sessionId).running;
  }

  constructor(
    readonly info: LocalSessionInfo,
    private readonly runtime: LocalRuntime,
    realRoot: string,
  ) {
    this.confinement = {
      runnerRoot: this.runnerRoot,
      root: info.workspaceRoot,
      realRoot,
      readRoots: info.config.read_roots,
    };
  }

  /** The workspace as commands see it: `workspace_path` under bwrap, else its host path. */
  get runnerRoot(): string {
    return this.info.config.workspace_path ?? this.info.workspaceRoot;
  }

  /** Registers an unmount to run on close (bucket mounts). */
  addUnmount(fn: () => Promise<void>): void {
    this.unmounts.push(fn);
  }

  /** The network commands have (see `network` in the destination config). */
  get network(): NetworkMode {
    return this.info.config.network ?? "host";
  }

  /** The record in the registry (another process may have restarted the sandbox), else ours. */
  private async currentRecord(): Promise<SandboxRecord | null> {
    try {
      const entry = JSON.parse(
        await fs.readFile(registryPath(this.info.registryDir, this.info.sessionId), "utf8"),
      ) as RegistryEntry;
      if (entry.workspace_root === this.info.workspaceRoot && entry.sandbox) return entry.sandbox;
    } catch {}
    return this.info.sandbox;
  }

  /**
   * The session's sandbox, alive. If it has ended (killed, or the machine restarted), a new one is started over
   * the same workspace (its processes and /tmp are gone) and `state().metadata.sandbox_restarts` says so.
   */
  private async liveSandbox(): Promise<SandboxRecord | null> {
    const rec = this.info.sandbox;
    if (this.info.config.isolation !== "bwrap") return rec;
    if (rec?.kind === "bwrap" && sandboxAlive(rec)) return rec;
    const latest = await this.currentRecord();
    if (latest && latest.kind === "bwrap" && sandboxAlive(latest)) {
      this.info.sandbox = latest;
      return latest;
    }
    this.info.sandbox = await this.startSandbox();
    this.restarts += 1;
    await writeRegistry(this.info);
    return this.info.sandbox;
  }

  private restarts = 0;

  /** Starts the session's bubblewrap sandbox (createSession, and after the sandbox ended). */
  async startSandbox(): Promise<SandboxRecord & { kind: "bwrap" }> {
    const { bwrap, setpriv, nsenter } = this.runtime;
    if (!bwrap || !setpriv || !nsenter)
      throw new RunnerError(
        "missing_dependency",
        "isolation 'bwrap' needs bubblewrap, setpriv and nsenter: apt-get install bubblewrap util-linux",
      );
    return startBwrapSandbox({
      bwrap,
      workspace: this.info.workspaceRoot,
      mountAt: this.runnerRoot,
      readRoots: this.info.config.read_roots,
      network: this.network,
      sideDir: sideDirOf(this.info.registryDir, this.info.sessionId),
      slirp4netns: this.runtime.slirp4netns,
    });
  }

  state(): RunnerSessionState {
    return {
      provider_id: LOCAL_PROVIDER_ID,
      session_id: this.info.sessionId,
      destination_id: this.info.destinationId,
      snapshot: null,
      metadata: {
        workspace_root: this.runnerRoot,
        host_root: this.info.workspaceRoot,
        config: this.info.config,
        binds: this.info.binds,
        read_only_entries: this.info.readOnlyEntries,
        mounts: this.info.mounts,
        snapshot_dir: this.info.snapshotDir,
        registry_dir: this.info.registryDir,
        process_tracking:
          this.info.sandbox?.kind === "bwrap" ? "sandbox" : (this.info.sandbox?.kind ?? "marker"),
        // What the file API addresses (`provider.limits(destination).file_scope`).
        file_scope: this.sandboxScope ? "sandbox" : "workspace",
        ...(this.restarts > 0 ? { sandbox_restarts: this.restarts } : {}),
      },
    };
  }

  private ensureOpen(): void {
    if (this.closed)
      throw new SessionNotFoundError({
        providerId: LOCAL_PROVIDER_ID,
        sessionId: this.info.sessionId,
        message: `session '${this.info.sessionId}' is closed`,
      });
  }

  private baseEnv(): Record<string, string> {
    return {
      PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
      HOME: this.runnerRoot,
      LANG: "C.UTF-8",
      TMPDIR: "/tmp",
      RODER_WORKSPACE: this.runnerRoot,
    };
  }

  async startCommand(
    input: RunnerStartCommandInput,
    options?: RunnerCallOptions,
  ): Promise<LocalCommandHandle> {
    this.ensureOpen();
    checkAborted(options?.signal, "runCommand");
    const { stdin: interactive, pty, ...wire } = (input ?? {}) as RunnerStartCommandInput;
    const request = parseCommandInput(wire);
    if (pty !== undefined && !isTerminalSize(pty))
      throw new RunnerError(
        "invalid_request",
        `pty must be { cols, rows } with whole numbers 1..65535, got ${JSON.stringify(pty)}`,
      );
    if (this.running.has(request.command_id)) {
      throw new RunnerError(
        "invalid_request",
        `command id '${request.command_id}' is already running in this session`,
      );
    }
    // In the sandbox's scope a cwd outside the workspace (or one whose symlinks lead out) is a path of the
    // sandbox's own view (under bwrap checked there by `env -C`).
    let outsideCwd = request.cwd ? this.outsidePath(request.cwd) : null;
    const cwd =
      outsideCwd ??
      (await resolveRunnerPath(this.confinement, request.cwd ?? this.runnerRoot, "cwd").catch((error) => {
        if (!this.sandboxScope || !request.cwd || !PathOutsideWorkspaceError.isInstance(error)) throw error;
        outsideCwd = sandboxViewPath(request.cwd, this.runnerRoot);
        return outsideCwd;
      }));
    // A cwd in a read root is at the same path for commands (bound there read-only under bwrap).
    const runnerCwd =
      !outsideCwd && isWithin(cwd, this.info.workspaceRoot)
        ? this.runnerRoot + cwd.slice(this.info.workspaceRoot.length)
        : cwd;
    const env = this.baseEnv();
    for (const [k, v] of request.env) {
      if (k === "" || k.includes("=") || k.includes("\u0000") || v.includes("\u0000")) {
        throw new RunnerError(
          "invalid_request",
          `invalid environment variable name or value for '${k.replace(/\u0000/g, "\\0")}'`,
        );
      }
      env[k] = v;
    }
    let argv = [request.program, ...request.args];
    if (argv.some((a) => a.includes("\u0000")))
      throw new RunnerError("invalid_request", "argv entries cannot contain NUL bytes");
    if (pty) {
      // On a terminal: util-linux `script` makes a PTY, sizes it and runs the argv on it (quoted, byte for byte).
      env.TERM ??= "xterm-256color";
      argv = [
        "script",
        "-qefc",
        `stty cols ${pty.cols} rows ${pty.rows} 2>/dev/null; exec ${argvToShell(argv)}`,
        "/dev/null",
      ];
    }
    let spawnCwd = cwd;
    const sandbox = await this.liveSandbox();
    if (sandbox?.kind === "bwrap") {
      argv = sandboxCommand(
        { setpriv: this.runtime.setpriv!, nsenter: this.runtime.nsenter! },
        sandbox,
        argv,
        runnerCwd,
        this.runnerRoot,
      );
      spawnCwd = "/";
    } else {
      env[SESSION_MARKER] = this.info.sessionId;
      if (sandbox?.kind === "cgroup") argv = cgroupCommand(sandbox, argv);
    }
    const commands = commandsOf(this.info.sessionId);
    const handle = spawnCommand({
      outputBudget: commands.budget,
      commandId: request.command_id,
      argv,
      cwd: spawnCwd,
      env,
      timeoutMs: request.timeout_ms,
      outputLimitBytes: this.info.config.output_limit_bytes,
      signal: options?.signal,
      interactive: interactive === true || pty !== undefined,
      ...(pty ? { resize: resizeTerminal } : {}),
    });
    commands.running.set(request.command_id, handle);
    void handle.wait().finally(() => {
      if (commands.running.get(request.command_id) !== handle) return;
      commands.running.delete(request.command_id);
      commands.ended.delete(request.command_id);
      commands.ended.set(request.command_id, handle);
      if (commands.ended.size > ENDED_KEPT) {
        const oldest = commands.ended.keys().next().value!;
        commands.ended.get(oldest)?.releaseOutput();
        commands.ended.delete(oldest);
      }
    });
    return handle;
  }

  async attachCommand(commandId: string, options?: RunnerCallOptions): Promise<RunnerCommandHandle> {
    this.ensureOpen();
    checkAborted(options?.signal, "attachCommand");
    const commands = commandsOf(this.info.sessionId);
    const handle = commands.running.get(commandId) ?? commands.ended.get(commandId);
    if (!handle)
      throw new CommandNotFoundError({
        providerId: LOCAL_PROVIDER_ID,
        commandId,
        message: `no command '${commandId}' in session '${this.info.sessionId}' of this process`,
      });
    return handle.follow();
  }

  async runCommand(
    request: RunnerCommandRequestInput,
    options?: RunnerCallOptions,
  ): Promise<RunnerCommandResult> {
    const handle = await this.startCommand(request, options);
    return handle.wait();
  }

  async cancelCommand(commandId: string): Promise<boolean> {
    const handle = this.running.get(commandId);
    if (!handle || handle.finished) return false;
    const killed = handle.cancel();
    await handle.wait();
    return killed;
  }

  /**
   * Whether the file API and `cwd` address the sandbox's whole view: under bwrap, or without isolation on a host
   * its operator declared to be the sandbox (`hostIsSandbox`, a provider setting: no destination or state sets it).
   */
  get sandboxScope(): boolean {
    return this.info.config.isolation === "bwrap" || this.runtime.hostIsSandbox;
  }

  /**
   * In the sandbox's scope, a path outside the workspace (and the read roots), or one whose symlinks lead out of
   * it, is served from the sandbox's own view (`viewFiles`). Null: serve it on the host, confined to the
   * workspace (the fast path, and the only one in the workspace's scope).
   */
  private outsidePath(path: string): string | null {
    if (!this.sandboxScope) return null;
    const abs = sandboxViewPath(path, this.runnerRoot);
    if (isWithin(abs, this.runnerRoot) || this.info.config.read_roots.some((r) => isWithin(abs, r)))
      return null;
    return abs;
  }

  /** Runs `inSandbox` for an isolated session when the host path refuses `path` as leading outside. */
  private async hostOrSandbox<T>(
    path: string,
    onHost: () => Promise<T>,
    inSandbox: (sandboxPath: string) => Promise<T>,
  ): Promise<T> {
    const outside = this.outsidePath(path);
    if (outside) return inSandbox(outside);
    try {
      return await onHost();
    } catch (error) {
      if (this.sandboxScope && PathOutsideWorkspaceError.isInstance(error))
        return inSandbox(sandboxViewPath(path, this.runnerRoot));
      throw error;
    }
  }

  /** The file work of the sandbox's own view: inside the bwrap sandbox, or on a host that is the sandbox. */
  private async viewFiles(): Promise<ViewFiles> {
    if (this.info.config.isolation !== "bwrap") return hostViewFiles();
    const record = await this.liveSandbox();
    if (record?.kind !== "bwrap") throw new RunnerError("sandbox_failed", "the session has no sandbox");
    return sandboxViewFiles({
      tools: { setpriv: this.runtime.setpriv!, nsenter: this.runtime.nsenter! },
      record,
      home: this.runnerRoot,
    });
  }

  async readFile(request: RunnerFileReadRequest, options?: RunnerCallOptions): Promise<RunnerFileReadResult> {
    this.ensureOpen();
    checkAborted(options?.signal, "readFile");
    const contents = await this.hostOrSandbox(
      request.path,
      async () => {
        const path = await resolveRunnerPath(this.confinement, request.path, "read");
        try {
          return await confinedRead(this.confinement, path, request.path, options?.signal);
        } catch (error) {
          mapFsError(error, request.path);
        }
      },
      async (p) => (await this.viewFiles()).read(p, options?.signal),
    );
    return { path: request.path, contents };
  }

  async writeFile(input: RunnerFileWriteInput, options?: RunnerCallOptions): Promise<void> {
    this.ensureOpen();
    const request = parseFileWriteInput(input);
    checkAborted(options?.signal, "writeFile");
    await this.hostOrSandbox(
      request.path,
      async () => {
        const path = await resolveRunnerPath(this.confinement, request.path, "write");
        if (path === this.info.workspaceRoot)
          throw new RunnerError("is_a_directory", `cannot write over the workspace root: ${request.path}`);
        try {
          await confinedWrite(this.confinement, path, request.path, request.contents, options?.signal);
        } catch (error) {
          mapFsError(error, request.path);
        }
      },
      async (p) => {
        await (await this.viewFiles()).write(p, request.contents, options?.signal);
      },
    );
  }

  async readFileStream(
    request: RunnerFileStreamRequest,
    options?: RunnerCallOptions,
  ): Promise<RunnerFileStream> {
    this.ensureOpen();
    checkRange(request);
    checkAborted(options?.signal, "readFileStream");
    const offset = request.offset ?? 0;
    const span = (size: number) =>
      Math.max(0, Math.min(size - offset, request.length ?? Number.POSITIVE_INFINITY));
    return this.hostOrSandbox(
      request.path,
      async () => {
        const path = await resolveRunnerPath(this.confinement, request.path, "read");
        try {
          const { handle, size } = await confinedOpen(this.confinement, path, request.path);
          const length = span(size);
          return {
            path: request.path,
            size,
            offset,
            length,
            body: readChunks(handle, offset, length, options?.signal),
          };
        } catch (error) {
          mapFsError(error, request.path);
        }
      },
      async (p) => {
        const { size, body } = await (await this.viewFiles()).openRead(
          p,
          offset,
          request.length,
          options?.signal,
        );
        return { path: request.path, size, offset, length: span(size), body };
      },
    );
  }

  async writeFileStream(
    request: { path: string },
    body: AsyncIterable<Uint8Array>,
    options?: RunnerCallOptions,
  ): Promise<{ bytes: number }> {
    this.ensureOpen();
    const { path: runnerPath } = parseFileWriteInput({ path: request.path, contents: new Uint8Array() });
    checkAborted(options?.signal, "writeFileStream");
    const bytes = await this.hostOrSandbox(
      runnerPath,
      async () => {
        const path = await resolveRunnerPath(this.confinement, runnerPath, "write");
        if (path === this.info.workspaceRoot)
          throw new RunnerError("is_a_directory", `cannot write over the workspace root: ${runnerPath}`);
        try {
          return await confinedWrite(this.confinement, path, runnerPath, body, options?.signal);
        } catch (error) {
          mapFsError(error, runnerPath);
        }
      },
      async (p) => (await this.viewFiles()).write(p, body, options?.signal),
    );
    return { bytes };
  }

  async exposePort(input: RunnerPortRequestInput): Promise<RunnerPortResult> {
    this.ensureOpen();
    const request = parsePortInput(input);
    if (!Number.isInteger(request.port) || request.port < 1 || request.port > 65535) {
      throw new RunnerError("invalid_request", `port must be 1..65535, got ${request.port}`);
    }
    const sandbox = await this.liveSandbox();
    if (sandbox?.kind !== "bwrap") return { port: request.port, url: `http://127.0.0.1:${request.port}` };
    const before = Object.keys(sandbox.forwards).length;
    const hostPort = await forwardPort(sandbox, request.port, LOCAL_PROVIDER_ID);
    if (Object.keys(sandbox.forwards).length !== before) await writeRegistry(this.info);
    return { port: request.port, url: `http://127.0.0.1:${hostPort}` };
  }

  async exportArtifact(
    input: RunnerArtifactExportRequestInput,
    options?: RunnerExportOptions,
  ): Promise<RunnerArtifactExportResult> {
    this.ensureOpen();
    const request = parseArtifactExportInput(input);
    const common = {
      request,
      config: this.info.config.artifacts,
      env: this.runtime.env,
      ...(options?.signal ? { signal: options.signal } : {}),
      ...(options?.onProgress ? { onProgress: options.onProgress } : {}),
    };
    return this.hostOrSandbox(
      request.path,
      async () => {
        const hostPath = await resolveRunnerPath(this.confinement, request.path, "read");
        return exportLocalArtifact({
          ...common,
          pin: () =>
            pinForExport(this.confinement, hostPath, request.path).catch((error) =>
              mapFsError(error, request.path),
            ),
          name: basename(hostPath),
        });
      },
      async (p) =>
        exportLocalArtifact({
          ...common,
          pin: async () => (await this.viewFiles()).pin(p, request.recursive ?? false),
          name: posix.basename(p) || "root",
        }),
    );
  }

  async snapshot(options?: RunnerCallOptions): Promise<RunnerSnapshotRef> {
    this.ensureOpen();
    checkAborted(options?.signal, "snapshot");
    const snapshotId = `snap-${randomUUID()}`;
    await ensurePrivateDir(this.info.snapshotDir, "snapshot store");
    const archive = join(this.info.snapshotDir, `${snapshotId}.tar.gz`);
    // Created here, exclusive and 0600: tar writes into it, never through a name someone planted.
    await (await fs.open(archive, "wx", 0o600)).close();
    // Mount points (buckets, binds) are not part of the workspace's own content.
    const excludes = this.info.mounts.map(
      (m) =>
        `--exclude=./${confinePath(m.path, { root: this.runnerRoot, access: "write" }).slice(this.runnerRoot.length + 1)}`,
    );
    try {
      await run("tar", ["-czf", archive, ...excludes, "-C", this.info.workspaceRoot, "."], {
        maxBuffer: 1024 * 1024,
      });
    } catch (error) {
      await fs.rm(archive, { force: true });
      throw new RunnerError(
        "snapshot_failed",
        `could not archive the workspace: ${(error as Error).message}`,
        { cause: error },
      );
    }
    const bytes = await fs.readFile(archive);
    return {
      provider_id: LOCAL_PROVIDER_ID,
      snapshot_id: snapshotId,
      metadata: {
        format: "tar.gz",
        archive,
        size: bytes.length,
        sha256: createHash("sha256").update(bytes).digest("hex"),
        created_at: new Date().toISOString(),
        source_session_id: this.info.sessionId,
      },
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const running = [...this.running.values()];
    for (const handle of running) handle.cancel();
    await Promise.all(running.map((h) => h.wait()));
    COMMANDS.delete(this.info.sessionId);
    // The sandbox (or the session's cgroup) first: everything the session started ends, and no process of it
    // holds a mount below the workspace when the mounts go.
    await endSandbox(await this.currentRecord(), this.info.sessionId);
    await fs.rm(sideDirOf(this.info.registryDir, this.info.sessionId), { recursive: true, force: true });
    for (const fn of this.unmounts.splice(0).reverse()) await fn().catch(() => {});
    for (const target of [...this.info.binds].reverse()) await unmount(target);
    await fs.rm(registryPath(this.info.registryDir, this.info.sessionId), { force: true });
    // The owner tag goes after the workspace (a failed removal leaves it for the sweeper); a kept workspace
    // keeps a `kept` tag, which the sweeper leaves alone.
    const tag = tagPathFor(this.info.workspaceRoot);
    if (this.info.config.delete_on_close) {
      const removed = await fs
        .rm(this.info.workspaceRoot, { recursive: true, force: true })
        .then(() => true)
        .catch(() => false);
      if (removed) await fs.rm(tag, { force: true }).catch(() => {});
    } else {
      await updateTag(tag, { state: "kept", expires_at: null }).catch(() => {});
    }
  }
}
