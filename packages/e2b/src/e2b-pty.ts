import { randomBytes } from "node:crypto";
import { argvToShell } from "@roder/runner-contract";

/** The PTY shell's env variable that carries the command line to run. */
const PTY_COMMAND_ENV = "RODER_PTY_COMMAND";

/** Bytes of the prelude kept at most while the start marker has not come (what precedes it is dropped). */
const PRELUDE_KEPT = 64 * 1024;

/**
 * E2B's `pty.create` always starts an interactive login shell (`/bin/bash -i -l`) on the terminal. To run an argv
 * there instead, the provider types one short line into it: print a start marker, then run the command held in
 * the process env (`RODER_PTY_COMMAND`: the env head, then `exec` of the argv quoted byte for byte, then `exit`,
 * which gives exec's failure status, 127/126, since an interactive shell survives a failed exec). The typed line
 * stays short whatever the argv (a terminal in canonical mode keeps at most 4095 bytes of a line) and the argv is
 * not echoed. The echo of the line shows the marker's escapes, not its bytes (0x1e), so everything up to the
 * printed marker (profile output, prompt, echo) is the shell's and is dropped; what follows is the program's. The
 * carrier is unset before the program runs; the leading space keeps the line out of the history (`ignoreboth`).
 */
export class PtyLaunch {
  readonly line: Uint8Array;
  /** Env of the PTY's shell: the command it runs (a carrier, unset before the program starts). */
  readonly env: Record<string, string>;
  private readonly marker: Buffer;
  private prelude = Buffer.alloc(0);
  private started = false;
  private settle!: () => void;
  /** Resolves once the program has the terminal (or the process ended first): input may go to it then. */
  readonly ready: Promise<void>;

  /** `envHead`: what `shellEnv` puts in front of the program (the env pairs moved from their carriers). */
  constructor(argv: string[], envHead = "") {
    const nonce = randomBytes(9).toString("hex");
    this.marker = Buffer.from(`\x1e${nonce}\x1e`);
    this.env = { [PTY_COMMAND_ENV]: `${envHead}builtin exec ${argvToShell(argv)}; exit` };
    this.line = new TextEncoder().encode(
      ` builtin printf '\\036%s\\036' ${nonce}; __roder_cmd=$${PTY_COMMAND_ENV}; builtin unset ${PTY_COMMAND_ENV}; builtin eval "$__roder_cmd"\n`,
    );
    this.ready = new Promise((resolve) => {
      this.settle = resolve;
    });
  }

  /** Terminal output as it arrives → the program's part of it (empty while the shell's prelude runs). */
  push(data: Uint8Array): Uint8Array {
    if (this.started) return data;
    this.prelude = Buffer.concat([this.prelude, data]);
    const at = this.prelude.indexOf(this.marker);
    if (at < 0) {
      if (this.prelude.length > PRELUDE_KEPT) this.prelude = this.prelude.subarray(-PRELUDE_KEPT);
      return new Uint8Array(0);
    }
    const rest = this.prelude.subarray(at + this.marker.length);
    this.prelude = Buffer.alloc(0);
    this.started = true;
    this.settle();
    return new Uint8Array(rest);
  }

  /**
   * The process ended. If the marker never came (the shell died or was killed first), the tail of what the
   * terminal showed is returned, so the failure can be read.
   */
  end(): Uint8Array {
    this.settle();
    if (this.started) return new Uint8Array(0);
    this.started = true;
    const tail = new Uint8Array(this.prelude);
    this.prelude = Buffer.alloc(0);
    return tail;
  }
}
