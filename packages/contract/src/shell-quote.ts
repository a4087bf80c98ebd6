import { RunnerError } from "./errors/runner-error.js";

/**
 * Quotes one argument for a POSIX shell so the program receives exactly these bytes: single quotes, with
 * each `'` written as `'\''`. Plain words made only of safe characters stay bare. A NUL byte cannot be in an
 * argv entry and throws.
 */
export function shellQuote(arg: string): string {
  if (arg.includes("\u0000")) {
    throw new RunnerError(
      "invalid_request",
      "an argument cannot contain a NUL byte (argv entries are C strings)",
    );
  }
  if (arg !== "" && /^[A-Za-z0-9_@%+=:,./-]+$/.test(arg)) return arg;
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}

/** Quotes argv into one POSIX shell command line (`program arg…`). */
export function argvToShell(argv: readonly string[]): string {
  if (argv.length === 0) throw new RunnerError("invalid_request", "argv must name a program");
  return argv.map(shellQuote).join(" ");
}
