import { RunnerError, type RunnerErrorOptions } from "@roder/runner-contract";

const symbol = Symbol.for("roder.runner.fly.workspace_lost");

/**
 * `resumeSession` found the machine reset: a stopped Fly Machine that starts again is rebuilt from its image,
 * so the workspace of the session (and every process) is gone. Never handed out as an empty session.
 */
export class FlyWorkspaceLostError extends RunnerError {
  readonly machineId: string;

  constructor(args: { machineId: string; message: string }, options?: RunnerErrorOptions) {
    super("workspace_lost", args.message, options);
    Object.defineProperty(this, symbol, { value: true, enumerable: false });
    this.name = "FlyWorkspaceLostError";
    this.machineId = args.machineId;
  }

  static override isInstance(error: unknown): error is FlyWorkspaceLostError {
    return typeof error === "object" && error !== null && (error as Record<symbol, unknown>)[symbol] === true;
  }
}
