import { type ChildProcess, spawn } from "node:child_process";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { MissingDependencyError } from "@roder/runner-contract";

const require = createRequire(import.meta.url);
const live = new Set<ChildProcess>();
process.once("exit", () => {
  for (const c of live) c.kill("SIGKILL");
});

/**
 * Path of an emulator's bin script. The emulators are optional peer dependencies of the testkit, resolved when
 * one is started: a missing one fails with a `MissingDependencyError` that names the package to install.
 */
export function binOf(pkg: string, bin: string, install = `npm install -D ${pkg}`, from?: string): string {
  let pj: string;
  try {
    pj = (from ? createRequire(from) : require).resolve(`${pkg}/package.json`);
  } catch (error) {
    throw new MissingDependencyError(
      { dependency: pkg, purpose: `the ${pkg} emulator (${bin})`, install },
      { cause: error },
    );
  }
  const meta = require(pj) as { bin: string | Record<string, string> };
  const rel = typeof meta.bin === "string" ? meta.bin : meta.bin[bin]!;
  return join(dirname(pj), rel);
}

/**
 * Starts an emulator on 127.0.0.1, waits until its output names the port, and returns a stopper that kills
 * it and waits for the exit. Fails with the output's tail when it does not come up in time.
 */
export async function spawnEmulator(args: {
  name: string;
  command: string;
  argv: string[];
  env?: Record<string, string>;
  portPattern: RegExp;
  timeoutMs?: number;
}): Promise<{ port: number; pid: number; stop(): Promise<void> }> {
  const child = spawn(args.command, args.argv, {
    env: { ...process.env, ...args.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  live.add(child);
  let output = "";
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(
        new Error(`${args.name} did not start within ${args.timeoutMs ?? 20_000} ms: ${output.slice(-800)}`),
      );
    }, args.timeoutMs ?? 20_000);
    const onData = (b: Buffer) => {
      output += b.toString();
      const m = args.portPattern.exec(output);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", onData);
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${args.name} exited with ${code} before it was ready: ${output.slice(-800)}`));
    });
  });
  child.stdout!.resume();
  child.stderr!.resume();
  return {
    port,
    pid: child.pid!,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise<void>((r) => child.once("exit", () => r()));
      child.kill("SIGTERM");
      const t = setTimeout(() => child.kill("SIGKILL"), 3000);
      await exited;
      clearTimeout(t);
      live.delete(child);
    },
  };
}
