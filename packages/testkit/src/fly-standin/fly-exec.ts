import { randomBytes } from "node:crypto";
import { ApiError } from "./fly-http.js";
import type { FlyStandInMachine } from "./fly-standin-types.js";

/**
 * `POST …/exec`: runs argv in the machine (stdin through a file), answers `{stdout, stderr, exit_code?,
 * exit_signal?}` as Fly does, and 408 when the request is held past `execLimitMs` while the command goes on.
 */
export function createExec(execLimitMs: number | false, onRequestTimeout: () => void) {
  return async function exec(m: FlyStandInMachine, body: Record<string, unknown>) {
    if (m.state !== "started" || !m.session)
      throw new ApiError(412, `failed_precondition: machine ${m.id} is not started (state ${m.state})`);
    const session = m.session;
    const command = Array.isArray(body.command)
      ? (body.command as string[])
      : typeof body.cmd === "string"
        ? ["/bin/sh", "-c", body.cmd]
        : null;
    if (!command || command.length === 0 || command.some((a) => typeof a !== "string"))
      throw new ApiError(400, "command is required");
    const timeoutS = typeof body.timeout === "number" && body.timeout > 0 ? body.timeout : 60;
    let argv = command;
    let stdinFile: string | undefined;
    if (typeof body.stdin === "string" && body.stdin.length > 0) {
      // The backend's commands have no stdin: the bytes go to a file the command reads from.
      stdinFile = `.fly-exec-stdin-${randomBytes(6).toString("hex")}`;
      await session.writeFile({ path: stdinFile, contents: new TextEncoder().encode(body.stdin) });
      argv = [
        "/bin/sh",
        "-c",
        'f="$1"; shift; exec "$@" < "$f"',
        "sh",
        `${(session.state().metadata as { workspace_root: string }).workspace_root}/${stdinFile}`,
        ...command,
      ];
    }
    const run = (async () => {
      try {
        const r = await session.runCommand({
          command_id: `exec-${randomBytes(6).toString("hex")}`,
          program: argv[0]!,
          args: argv.slice(1),
          timeout_ms: timeoutS * 1000,
        });
        if (r.exit_code === null && /timed out/.test(r.stderr))
          throw new ApiError(408, "deadline_exceeded: exec timed out");
        // Fly omits exit_code when it is 0 (omitempty).
        return {
          ...(r.exit_code ? { exit_code: r.exit_code } : {}),
          ...(r.exit_code === null ? { exit_signal: 9 } : {}),
          stdout: r.stdout,
          stderr: r.stderr,
        };
      } finally {
        if (stdinFile)
          await session
            .runCommand({ command_id: "rm", program: "rm", args: ["-f", stdinFile] })
            .catch(() => {});
      }
    })();
    if (execLimitMs === false) return run;
    // The API edge gives up on a request held too long; the command goes on in the machine.
    run.catch(() => {});
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        run,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => {
            onRequestTimeout();
            reject(new ApiError(408, "deadline_exceeded: request timed out"));
          }, execLimitMs);
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  };
}
