import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { once } from "node:events";
import { createWriteStream, promises as fs } from "node:fs";
import { tmpdir } from "node:os";
import { join, posix } from "node:path";
import { finished } from "node:stream/promises";
import { CancelledError, RunnerError } from "@roder/runner-contract";
import { sandboxCommand } from "./local-bwrap.js";
import type { WriteSource } from "./local-fs-write.js";
import type { SandboxRecord } from "./local-sandbox.js";

/**
 * File work on paths of an isolated session's own view that are not its workspace (`/tmp/x`, `/etc/hostname`,
 * a symlink in the workspace that points elsewhere in the sandbox): done inside the sandbox, by its user, with
 * its mounts, so nothing outside the sandbox can be named. Reads stream the bytes out of `cat`; writes go to a
 * temporary file beside the target (fsynced, then renamed), so a failed or aborted write leaves the old file.
 */
export interface SandboxFiles {
  tools: { setpriv: string; nsenter: string };
  record: SandboxRecord & { kind: "bwrap" };
  /** The sandbox's workspace path (commands start there). */
  home: string;
}

const READ = `p=$1
if [ ! -e "$p" ]; then echo ENOENT >&2; exit 2; fi
if [ -d "$p" ]; then echo EISDIR >&2; exit 3; fi
if [ ! -f "$p" ]; then echo ENOTREG >&2; exit 4; fi
if [ ! -r "$p" ]; then echo EACCES >&2; exit 5; fi
exec cat -- "$p"`;

const WRITE = `p=$1; t=$2
if [ -d "$p" ]; then echo EISDIR >&2; exit 3; fi
d=$(dirname -- "$p")
mkdir -p -- "$d" 2>/dev/null || { echo EACCES >&2; exit 5; }
( set -C; : > "$t" ) 2>/dev/null || { echo EACCES >&2; exit 5; }
if ! cat > "$t"; then rm -f -- "$t"; echo EIO >&2; exit 6; fi
chmod 644 -- "$t" 2>/dev/null
sync -- "$t" 2>/dev/null
mv -f -- "$t" "$p" 2>/dev/null || { rm -f -- "$t"; echo EACCES >&2; exit 5; }`;

/**
 * Kills every process of a sandbox file operation: nsenter forks the script inside the sandbox's PID namespace,
 * so killing the spawned process alone would leave the script running (a writer that then saw end-of-input
 * would commit a partial file). The operation runs in its own process group, killed whole.
 */
function killAll(child: ReturnType<typeof spawn>): void {
  try {
    if (child.pid !== undefined) process.kill(-child.pid, "SIGKILL");
  } catch {
    child.kill("SIGKILL");
  }
}

function run(
  _files: SandboxFiles,
  argv: string[],
  opts: { stdin?: WriteSource; signal?: AbortSignal | undefined; stdout?: NodeJS.WritableStream },
): Promise<{ code: number | null; stdout: Buffer; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), {
      cwd: "/",
      env: { PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", LANG: "C.UTF-8" },
      stdio: [opts.stdin ? "pipe" : "ignore", "pipe", "pipe"],
      detached: true,
    });
    const out: Buffer[] = [];
    let err = "";
    if (opts.stdout) child.stdout!.pipe(opts.stdout);
    else child.stdout!.on("data", (b: Buffer) => out.push(b));
    child.stderr!.on("data", (b: Buffer) => {
      if (err.length < 4096) err += b.toString("utf8");
    });
    // Killed before its input is closed: a cancelled write never reaches its commit (the rename).
    const onAbort = () => killAll(child);
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    child.on("error", reject);
    child.on("close", (code) => {
      opts.signal?.removeEventListener("abort", onAbort);
      const result = { code, stdout: Buffer.concat(out), stderr: err };
      if (!opts.stdout) return resolve(result);
      // The bytes piped on are written before the caller looks at them.
      finished(opts.stdout).then(
        () => resolve(result),
        () => resolve(result),
      );
    });
    const stdin = opts.stdin;
    if (stdin instanceof Uint8Array) {
      child.stdin!.on("error", () => {});
      child.stdin!.end(Buffer.from(stdin.buffer, stdin.byteOffset, stdin.byteLength));
    } else if (stdin) {
      // A stream, with backpressure. A source that throws kills the writer first, and only then is its input
      // closed: the script never sees an end of input it would take for the whole file.
      const sink = child.stdin!;
      sink.on("error", () => {});
      (async () => {
        for await (const chunk of stdin) {
          if (!sink.write(chunk)) await once(sink, "drain");
        }
        sink.end();
      })().catch((error) => {
        killAll(child);
        reject(error);
      });
    }
  });
}

function fail(code: number | null, stderr: string, path: string, operation: string): never {
  const why = stderr.trim().split("\n").pop() ?? "";
  if (why === "ENOENT") throw new RunnerError("not_found", `no such file: ${path}`);
  if (why === "EISDIR") throw new RunnerError("is_a_directory", `path is a directory: ${path}`);
  if (why === "ENOTREG") throw new RunnerError("not_a_regular_file", `not a regular file: ${path}`);
  if (why === "EACCES")
    throw new RunnerError(
      "read_only",
      operation === "readFile"
        ? `path is not readable by the sandbox's user: ${path}`
        : `path is read-only for the sandbox's user: ${path}`,
    );
  throw new RunnerError("io_error", `${operation} of ${path} failed in the sandbox (exit ${code}): ${why}`);
}

const sh = (files: SandboxFiles, script: string, args: string[]) =>
  sandboxCommand(files.tools, files.record, ["/bin/sh", "-c", script, "sh", ...args], files.home, files.home);

export async function sandboxRead(
  files: SandboxFiles,
  path: string,
  signal?: AbortSignal,
): Promise<Uint8Array> {
  const r = await run(files, sh(files, READ, [path]), { signal });
  if (signal?.aborted) throw new CancelledError({ operation: "readFile" });
  if (r.code !== 0) fail(r.code, r.stderr, path, "readFile");
  return new Uint8Array(r.stdout.buffer, r.stdout.byteOffset, r.stdout.byteLength);
}

export async function sandboxWrite(
  files: SandboxFiles,
  path: string,
  contents: WriteSource,
  signal?: AbortSignal,
): Promise<number> {
  const tmp = posix.join(posix.dirname(path), `.roder-write-${randomUUID()}`);
  const removeTmp = () =>
    run(
      files,
      sandboxCommand(files.tools, files.record, ["rm", "-f", "--", tmp], files.home, files.home),
      {},
    );
  let bytes = 0;
  const counted =
    contents instanceof Uint8Array
      ? contents
      : (async function* () {
          for await (const chunk of contents) {
            bytes += chunk.byteLength;
            yield chunk;
          }
        })();
  let r: Awaited<ReturnType<typeof run>>;
  try {
    r = await run(files, sh(files, WRITE, [path, tmp]), { stdin: counted, signal });
  } catch (error) {
    await removeTmp();
    throw error;
  }
  if (signal?.aborted) {
    await removeTmp();
    throw new CancelledError({ operation: "writeFile" });
  }
  if (r.code !== 0) fail(r.code, r.stderr, path, "writeFile");
  return contents instanceof Uint8Array ? contents.byteLength : bytes;
}

const OPEN = `p=$1; off=$2; len=$3
if [ ! -e "$p" ]; then echo ENOENT >&2; exit 2; fi
if [ -d "$p" ]; then echo EISDIR >&2; exit 3; fi
if [ ! -f "$p" ]; then echo ENOTREG >&2; exit 4; fi
if [ ! -r "$p" ]; then echo EACCES >&2; exit 5; fi
exec 3<"$p" || { echo EACCES >&2; exit 5; }
echo "SIZE $(stat -L -c %s -- "$p")" >&2
if [ "$len" = all ]; then exec dd bs=1M iflag=skip_bytes skip="$off" status=none <&3
else exec dd bs=1M iflag=skip_bytes,count_bytes skip="$off" count="$len" status=none <&3; fi`;

/**
 * A sandbox file's bytes `[offset, offset + length)` streamed out of `dd` in the sandbox, with its size; the
 * opening errors (missing, a directory, unreadable) come from this call, the read's own from the body.
 */
export async function sandboxOpenRead(
  files: SandboxFiles,
  path: string,
  offset: number,
  length: number | undefined,
  signal?: AbortSignal,
): Promise<{ size: number; body: AsyncIterable<Uint8Array> }> {
  const argv = sh(files, OPEN, [path, String(offset), length === undefined ? "all" : String(length)]);
  const child = spawn(argv[0]!, argv.slice(1), {
    cwd: "/",
    env: { PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", LANG: "C.UTF-8" },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  const onAbort = () => killAll(child);
  signal?.addEventListener("abort", onAbort, { once: true });
  let err = "";
  const exited = new Promise<number | null>((res) => child.on("close", (code) => res(code)));
  const size = await new Promise<number | null>((resolve, reject) => {
    child.on("error", reject);
    child.stderr!.on("data", (b: Buffer) => {
      if (err.length < 4096) err += b.toString("utf8");
      const m = /^SIZE (\d+)$/m.exec(err);
      if (m) resolve(Number(m[1]));
    });
    void exited.then(() => resolve(null));
  });
  if (size === null) {
    signal?.removeEventListener("abort", onAbort);
    if (signal?.aborted) throw new CancelledError({ operation: "readFileStream" });
    fail(await exited, err, path, "readFile");
  }
  const stdout = child.stdout!;
  const body = (async function* () {
    try {
      for await (const chunk of stdout as AsyncIterable<Buffer>)
        yield new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
      const code = await exited;
      if (signal?.aborted) throw new CancelledError({ operation: "readFileStream" });
      if (code !== 0) fail(code, err.replace(/^SIZE \d+\n/m, ""), path, "readFile");
    } finally {
      signal?.removeEventListener("abort", onAbort);
      if (child.exitCode === null) killAll(child);
    }
  })();
  return { size, body };
}

/**
 * Copies a sandbox file (or, `recursive`, a directory as its contents) into a private host directory, for an
 * export: the bytes come out of the sandbox through `cat` / `tar`, never by a host path into it.
 */
export async function sandboxCopyOut(
  files: SandboxFiles,
  path: string,
  recursive: boolean,
): Promise<{ path: string; close: () => Promise<void> }> {
  const dir = await fs.mkdtemp(join(tmpdir(), "roder-sandbox-export-"));
  const close = () => fs.rm(dir, { recursive: true, force: true });
  try {
    const probe = await run(
      files,
      sh(files, 'if [ -d "$1" ]; then echo dir; elif [ -f "$1" ]; then echo file; else echo none; fi', [
        path,
      ]),
      {},
    );
    const kind = probe.stdout.toString().trim();
    if (kind === "none") throw new RunnerError("not_found", `no such file: ${path}`);
    const name = posix.basename(path) || "root";
    if (kind === "file") {
      const target = join(dir, name);
      const r = await run(files, sh(files, READ, [path]), {
        stdout: createWriteStream(target, { mode: 0o600 }),
      });
      if (r.code !== 0) fail(r.code, r.stderr, path, "exportArtifact");
      return { path: target, close };
    }
    if (!recursive)
      throw new RunnerError("is_a_directory", `path is a directory: ${path} (export it recursive)`);
    const target = join(dir, name);
    await fs.mkdir(target, { mode: 0o700 });
    // tar out of the sandbox, into the private directory: no owners, no devices, nothing outside it.
    const untar = spawn("tar", ["-x", "--no-same-owner", "--no-same-permissions", "-C", target], {
      stdio: ["pipe", "ignore", "pipe"],
    });
    untar.stdin!.on("error", () => {});
    // Listened for before anything can end it.
    const untarDone = new Promise<number | null>((res) => untar.on("close", (code) => res(code)));
    const r = await run(
      files,
      sandboxCommand(files.tools, files.record, ["tar", "-c", "-C", path, "."], files.home, files.home),
      { stdout: untar.stdin! },
    );
    const untarCode = await untarDone;
    if (r.code !== 0 || untarCode !== 0)
      throw new RunnerError("io_error", `could not copy ${path} out of the sandbox: ${r.stderr.trim()}`);
    return { path: target, close };
  } catch (error) {
    await close();
    throw error;
  }
}
