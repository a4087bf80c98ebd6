import type { createRunnerRegistry } from "@roder/runner-contract";

/** What every command module shares: version, exit codes, the typed CLI error, the I/O seam, parsed args. */

export const VERSION = "0.1.0";

/** Documented exit codes. */
export const EXIT = {
  ok: 0,
  failure: 1,
  usage: 2,
  config: 3,
  provider: 4,
  timeout: 124,
  interrupted: 130,
  killed: 137,
} as const;

export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
    readonly hint?: string,
  ) {
    super(message);
  }
}

export interface Io {
  stdout: (s: string | Uint8Array) => void;
  stderr: (s: string | Uint8Array) => void;
  env: Record<string, string | undefined>;
  isTTY: boolean;
}

/** Parsed option values (node:util parseArgs). */
export type Values = Record<string, string | boolean | string[] | undefined>;

/** One command's invocation: its name, options, positionals, what follows `--`, I/O and the providers. */
export interface CommandArgs {
  command: string;
  v: Values;
  positionals: string[];
  tail: string[];
  io: Io;
  registry: ReturnType<typeof createRunnerRegistry>;
}
