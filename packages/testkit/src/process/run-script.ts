import { spawn } from "node:child_process";

export interface ScriptRun {
  code: number | null;
  /** The signal that ended it (`"SIGKILL"` for the crash fixtures, which kill themselves). */
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs a TypeScript file in its own Node process (`node --import tsx`) and resolves once it has exited, with
 * what it printed: how tests play a caller that crashes mid-create or mid-command.
 */
export function runScript(
  file: string,
  opts: { env?: Record<string, string | undefined>; cwd?: string } = {},
): Promise<ScriptRun> {
  const child = spawn(process.execPath, ["--import", "tsx", file], {
    ...(opts.cwd ? { cwd: opts.cwd } : {}),
    env: { ...process.env, ...opts.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (b) => (stdout += b));
  child.stderr!.on("data", (b) => (stderr += b));
  return new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}
