import { parseFileWriteInput, type RemoteRunnerSession } from "@roder/runner-contract";
import type { ExecResult, FlyApi } from "./fly-api.js";
import {
  attachExecCommand,
  cancelExecCommand,
  runExecCommand,
  startExecCommand,
} from "./fly-exec-commands.js";
import { readExecFile, writeExecFile } from "./fly-exec-files.js";
import type { FlyExecContext } from "./fly-exec-follow.js";
import { FlyMachineSession, type FlySessionInfo } from "./fly-machine-session.js";

export interface FlySessionTuning {
  /** Largest part of a file moved by one exec, and of each output stream per poll (bytes). */
  chunkBytes: number;
}

// A Fly session in exec mode: every command and file operation is an exec call of the Machines API. Commands
// run detached and are followed by held polls (fly-exec-commands.ts, fly-exec-follow.ts); files move in
// chunks of one exec each (fly-exec-files.ts). What it shares with agent mode is FlyMachineSession's.
export class FlySession extends FlyMachineSession implements RemoteRunnerSession {
  /** What the command and file modules use of this session (its exec, workspace, commands and hold). */
  private readonly ctx: FlyExecContext;
  declare readonly info: FlySessionInfo & {
    /** Written in the workspace at create: resumeSession checks it is still there (see FlyWorkspaceLostError). */
    marker?: string;
    tuning?: FlySessionTuning;
  };

  constructor(api: FlyApi, info: FlySession["info"]) {
    super(api, info);
    this.ctx = {
      machineId: info.machineId,
      root: info.config.workspace_root,
      chunkBytes: info.tuning?.chunkBytes ?? 4 * 1024 * 1024,
      defaultTimeoutS: info.config.default_exec_timeout_s,
      hold: info.config.exec_hold_s,
      running: new Map(),
      exec: (command, o) => this.exec(command, o),
    };
  }

  get root(): string {
    return this.info.config.workspace_root;
  }

  protected stateFacts(): { marker?: string | undefined } {
    return { marker: this.info.marker };
  }

  private get path(): string {
    return `/apps/${this.info.config.app}/machines/${this.info.machineId}`;
  }

  /**
   * One exec call: argv, optional stdin, exec timeout in seconds. `idempotent`: the program may run twice
   * (reads, polls), so a 408, 5xx or dropped connection is retried; otherwise only a 429 is.
   */
  exec(
    command: string[],
    o: {
      stdin?: string;
      timeoutS: number;
      signal?: AbortSignal | undefined;
      operation: string;
      idempotent?: boolean;
      /** A 408 goes back to the caller (which holds shorter) instead of being retried as it was. */
      retry408?: boolean;
    },
  ): Promise<ExecResult> {
    return this.api.call<ExecResult>("POST", `${this.path}/exec`, {
      body: { command, timeout: o.timeoutS, ...(o.stdin !== undefined ? { stdin: o.stdin } : {}) },
      idempotent: o.idempotent ?? false,
      ...(o.retry408 === false ? { retry408: false } : {}),
      operation: o.operation,
      signal: o.signal,
      machineId: this.info.machineId,
    });
  }

  runCommand: RemoteRunnerSession["runCommand"] = this.life.guard((i, o) => runExecCommand(this.ctx, i, o));

  /**
   * Starts the command detached in the machine and follows it: each poll is one exec held until the command
   * prints or ends, so output arrives in chunks as it is polled. The command's output stays in the machine:
   * after `detach()`, `attachCommand` from this or any other process (a session resumed from `state()`) follows
   * it again, replaying it from the start. `signal` aborts the command.
   */
  startCommand: NonNullable<RemoteRunnerSession["startCommand"]> = this.life.guard((i, o) =>
    startExecCommand(this.ctx, i, o),
  );

  /**
   * Follows a command started with `startCommand` (by this or any other client of the machine), replaying its
   * output from the start; `CommandNotFoundError` when the machine has no such command (or forgot it: finished
   * commands are kept 10 minutes).
   */
  attachCommand: NonNullable<RemoteRunnerSession["attachCommand"]> = this.life.guard((id, o) =>
    attachExecCommand(this.ctx, id, o),
  );

  /** Kills the command's process group through an exec; `true` when it was running. */
  cancelCommand: RemoteRunnerSession["cancelCommand"] = this.life.guard((id, o) =>
    cancelExecCommand(this.ctx, id, o),
  );

  /** Reads in parts of at most `chunkBytes`, one exec each (the first also gives the size). */
  readFile: RemoteRunnerSession["readFile"] = this.life.guard((r, o) => readExecFile(this.ctx, r, o));

  /** Writes in parts of at most `chunkBytes` to a temp file beside the target, renamed over it at the end. */
  writeFile: RemoteRunnerSession["writeFile"] = this.life.guard((i, o) =>
    writeExecFile(this.ctx, parseFileWriteInput(i), o),
  );
}
