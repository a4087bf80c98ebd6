import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { createReadStream, promises as fs } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import type { Readable } from "node:stream";
import { type RemoteRunnerSession, RunnerError } from "@roder/runner-contract";
import {
  lineSplitter,
  type PartUploadJob,
  type PartUploadResult,
  uploadPartsWith,
} from "./artifact-parts.js";

/** A file ready to upload, with the checksums computed where it lives. */
export interface PreparedArtifact {
  /** Where the bytes are (a runner path, or a host path for host sources). */
  file: string;
  /** The object's file name (`name.tar.gz` for a directory). */
  name: string;
  size: number;
  sha256: string;
  md5Base64: string;
  contentType: string;
  /**
   * With `prepare(…, { deferHashes: true })`: `sha256` and `md5Base64` are empty until this computes them (so
   * the hashing can run alongside the upload; see the artifact target's `verify: "after"`).
   */
  hashes?: () => Promise<{ sha256: string; md5Base64: string }>;
  cleanup(): Promise<void>;
}

/** What an export needs from the place the artifact lives. */
export interface ArtifactSource {
  prepare(path: string, recursive: boolean, opts?: { deferHashes?: boolean }): Promise<PreparedArtifact>;
  /** Direct path: the source uploads the bytes itself to a signed URL (never via the host). */
  uploadDirect?(
    file: string,
    upload: { url: string; headers: Record<string, string> },
    signal?: AbortSignal,
  ): Promise<void>;
  /**
   * Direct path for large files: the source reads the file once, hashing it (sha256 of the whole, MD5 of each
   * part), and uploads the parts to their signed URLs in parallel with their Content-MD5 (see PART_SCRIPT).
   * Sources without it use `uploadDirect` (one PUT) for every size.
   */
  uploadParts?(file: string, job: PartUploadJob): Promise<PartUploadResult>;
  /** Stream path: the bytes, read with bounded memory. */
  openStream(file: string): Promise<Readable>;
}

const contentTypeOf = (name: string) =>
  name.endsWith(".tar.gz")
    ? "application/gzip"
    : name.endsWith(".json")
      ? "application/json"
      : /\.(txt|log|md|csv)$/.test(name)
        ? "text/plain; charset=utf-8"
        : "application/octet-stream";

function curlUpload(
  file: string,
  upload: { url: string; headers: Record<string, string> },
  runner: (argv: string[], stdin: string) => Promise<{ code: number | null; stderr: string }>,
) {
  // The signed URL is a credential: it goes to curl on stdin as its config (`-K -`), never on a command line.
  const argv = [
    "curl",
    "-sS",
    "-f",
    "--retry",
    "3",
    "-X",
    "PUT",
    "-T",
    file,
    ...Object.entries(upload.headers).flatMap(([k, v]) => ["-H", `${k}: ${v}`]),
    "-K",
    "-",
  ];
  return runner(argv, `url = "${upload.url}"\n`);
}

/** sha256 and MD5 of a file in one read, and its size. */
async function hashFile(file: string): Promise<{ size: number; sha256: string; md5Base64: string }> {
  const sha = createHash("sha256");
  const md5 = createHash("md5");
  let size = 0;
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 })) {
    sha.update(chunk as Buffer);
    md5.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { size, sha256: sha.digest("hex"), md5Base64: md5.digest("base64") };
}

/** The artifact lives on this machine (the local runner). Upload runs `curl` as a separate process. */
export function hostArtifactSource(opts: { name?: string } = {}): ArtifactSource {
  return {
    async prepare(path, recursive, prepareOpts) {
      const st = await fs.stat(path).catch((e) => {
        throw new RunnerError("not_found", `no such file or directory: ${basename(path)}`, { cause: e });
      });
      let file = path;
      // `name`: the artifact's name when `path` is not it (a pinned `/proc/<pid>/fd/<n>` of the local runner).
      let name = opts.name ?? basename(path);
      let cleanup = async () => {};
      if (st.isDirectory()) {
        if (!recursive)
          throw new RunnerError(
            "invalid_request",
            `${name} is a directory: export it with recursive: true (as a .tar.gz)`,
          );
        const dir = await fs.mkdtemp(join(tmpdir(), "roder-artifact-"));
        file = join(dir, `${name}.tar.gz`);
        name = `${name}.tar.gz`;
        await new Promise<void>((resolve, reject) => {
          const p = spawn("tar", ["-czf", file, "-C", path, "."], { stdio: ["ignore", "ignore", "pipe"] });
          let err = "";
          p.stderr.on("data", (b) => (err += b));
          p.on("error", reject);
          p.on("exit", (code) =>
            code === 0 ? resolve() : reject(new RunnerError("io_error", `tar failed: ${err.trim()}`)),
          );
        });
        cleanup = () => fs.rm(dir, { recursive: true, force: true });
      } else if (!st.isFile()) throw new RunnerError("invalid_request", `${name} is not a regular file`);
      const common = { file, name, contentType: contentTypeOf(name), cleanup };
      if (prepareOpts?.deferHashes)
        return {
          ...common,
          size: (await fs.stat(file)).size,
          sha256: "",
          md5Base64: "",
          hashes: () => hashFile(file),
        };
      const h = await hashFile(file);
      return { ...common, ...h };
    },
    async uploadDirect(file, upload, signal) {
      const r = await curlUpload(
        file,
        upload,
        (argv, stdin) =>
          new Promise((resolve, reject) => {
            const p = spawn(argv[0]!, argv.slice(1), {
              stdio: ["pipe", "ignore", "pipe"],
              env: { PATH: process.env.PATH ?? "/usr/bin:/bin" },
              ...(signal ? { signal, killSignal: "SIGKILL" as const } : {}),
            });
            let stderr = "";
            p.stderr.on("data", (b) => (stderr += b));
            p.on("error", reject);
            p.on("exit", (code) => resolve({ code, stderr }));
            p.stdin.end(stdin);
          }),
      );
      if (r.code !== 0)
        throw new RunnerError(
          "upload_failed",
          `direct upload failed (curl exit ${r.code}): ${r.stderr.replace(/https?:\/\/\S+/g, "<url>").trim()}`,
        );
    },
    uploadParts(file, job) {
      // The same script as in a sandbox, run by sh on this machine; the URLs are in its environment only.
      return uploadPartsWith(
        (argv, env, onLine, signal) =>
          new Promise((resolve, reject) => {
            // Its own process group: aborting kills the script and the curls it runs in the background.
            const p = spawn(argv[0]!, argv.slice(1), {
              stdio: ["ignore", "pipe", "pipe"],
              env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...Object.fromEntries(env) },
              detached: true,
            });
            const kill = () => {
              try {
                if (p.pid) process.kill(-p.pid, "SIGKILL");
              } catch {
                // already gone
              }
            };
            if (signal?.aborted) kill();
            signal?.addEventListener("abort", kill, { once: true });
            let stdout = "";
            let stderr = "";
            const lines = onLine ? lineSplitter(onLine) : undefined;
            p.stdout.setEncoding("utf8");
            p.stdout.on("data", (b: string) => {
              stdout += b;
              lines?.push(b);
            });
            p.stderr.on("data", (b) => (stderr += b));
            p.on("error", reject);
            p.on("close", (code) => {
              signal?.removeEventListener("abort", kill);
              lines?.end();
              resolve({ code, stdout, stderr });
            });
          }),
        file,
        job,
        "on the host",
      );
    },
    async openStream(file) {
      return createReadStream(file, { highWaterMark: 1 << 20 });
    },
  };
}

/** $1 path, $2 recursive (1/0), $3 temp dir: prints "size sha256 md5hex file". */
const PREPARE = [
  'p="$1"; f="$p"',
  'if [ -d "$p" ]; then [ "$2" = 1 ] || exit 92; mkdir -p "$3" && f="$3/$(basename "$p").tar.gz" && tar -czf "$f" -C "$p" . || exit 94',
  'elif [ ! -f "$p" ]; then exit 93; fi',
  // $4 = defer: the hashes come later (HASH), alongside the upload.
  'if [ "$4" = defer ]; then printf \'%s - - %s\\n\' "$(wc -c < "$f" | tr -d \' \')" "$f"; exit 0; fi',
  'printf \'%s %s %s %s\\n\' "$(wc -c < "$f" | tr -d \' \')" "$(sha256sum "$f" | cut -d\' \' -f1)" "$(md5sum "$f" | cut -d\' \' -f1)" "$f"',
].join("\n");

/** $1 file: "sha256 md5hex", the two hashes computed at the same time (scratch files in a mktemp dir). */
const HASH = [
  "t=$(mktemp -d) || exit 95",
  'sha256sum -- "$1" | cut -d" " -f1 > "$t/s" & md5sum -- "$1" | cut -d" " -f1 > "$t/m"; wait',
  'printf "%s %s\\n" "$(cat "$t/s")" "$(cat "$t/m")"; rm -rf -- "$t"',
].join("\n");

/** $1 file, $2 first byte (1-based), $3 length: those bytes as base64 on stdout. */
const RANGE = 'tail -c +"$2" -- "$1" | head -c "$3" | base64 -w0';

/**
 * The artifact lives in a remote sandbox: hashing, archiving and the direct upload run there through
 * `runCommand` (needs sh, coreutils, tar and curl in the image). The signed URL reaches curl through the
 * command's environment and a shell builtin, never argv.
 */
export function sessionArtifactSource(
  session: RemoteRunnerSession,
  opts: {
    tmpDir: string;
    /** The stream path's bytes, when the provider can stream a file itself (E2B's files API). */
    openStream?: (file: string) => Promise<Readable>;
    /** Bytes per ranged read of the default stream (4 MiB). */
    chunkBytes?: number;
  },
): ArtifactSource {
  const id = () => `artifact-${randomBytes(6).toString("hex")}`;
  return {
    async prepare(path, recursive, prepareOpts) {
      const tmp = `${opts.tmpDir}/.roder-artifact-${randomBytes(6).toString("hex")}`;
      const defer = prepareOpts?.deferHashes === true;
      const r = await session.runCommand({
        command_id: id(),
        program: "sh",
        args: ["-c", PREPARE, "prepare", path, recursive ? "1" : "0", tmp, defer ? "defer" : "now"],
      });
      if (r.exit_code === 92)
        throw new RunnerError(
          "invalid_request",
          `${path} is a directory: export it with recursive: true (as a .tar.gz)`,
        );
      if (r.exit_code === 93) throw new RunnerError("not_found", `no such file or directory: ${path}`);
      if (r.exit_code !== 0)
        throw new RunnerError("io_error", `could not prepare ${path} for export: ${r.stderr.trim()}`);
      const [size, sha256, md5hex, ...rest] = r.stdout.trim().split(" ");
      const file = rest.join(" ");
      const name = basename(file);
      return {
        file,
        name,
        size: Number(size),
        sha256: defer ? "" : sha256!,
        md5Base64: defer ? "" : Buffer.from(md5hex!, "hex").toString("base64"),
        contentType: contentTypeOf(name),
        ...(defer
          ? {
              hashes: async () => {
                const h = await session.runCommand({
                  command_id: id(),
                  program: "sh",
                  args: ["-c", HASH, "hash", file],
                });
                const [sha, md5] = h.stdout.trim().split(" ");
                if (h.exit_code !== 0 || !sha || !md5)
                  throw new RunnerError("io_error", `could not hash ${path}: ${h.stderr.trim()}`);
                return { sha256: sha, md5Base64: Buffer.from(md5, "hex").toString("base64") };
              },
            }
          : {}),
        cleanup: async () => {
          await session.runCommand({ command_id: id(), program: "rm", args: ["-rf", tmp] }).catch(() => {});
        },
      };
    },
    async uploadDirect(file, upload, signal) {
      const headerArgs = Object.entries(upload.headers).flatMap(([k, v]) => ["-H", `${k}: ${v}`]);
      const script =
        'f="$1"; shift; printf \'url = "%s"\\n\' "$RODER_UPLOAD_URL" | curl -sS -f --retry 3 -X PUT -T "$f" "$@" -K -';
      const r = await session.runCommand(
        {
          command_id: id(),
          program: "sh",
          args: ["-c", script, "upload", file, ...headerArgs],
          env: [["RODER_UPLOAD_URL", upload.url]],
        },
        signal ? { signal } : undefined,
      );
      if (r.exit_code !== 0)
        throw new RunnerError(
          "upload_failed",
          `direct upload from the sandbox failed (exit ${r.exit_code}): ${r.stderr.replace(/https?:\/\/\S+/g, "<url>").trim()}`,
        );
    },
    uploadParts(file, job) {
      return uploadPartsWith(
        async (argv, env, onLine, signal) => {
          const options = signal ? { signal } : undefined;
          // With a progress listener and a streaming session, the parts are reported as the script prints them.
          if (onLine && session.startCommand) {
            const handle = await session.startCommand(
              { command_id: id(), program: argv[0]!, args: argv.slice(1), env },
              options,
            );
            const lines = lineSplitter(onLine);
            const text = new TextDecoder();
            for await (const chunk of handle.output)
              if (chunk.stream === "stdout") lines.push(text.decode(chunk.data, { stream: true }));
            lines.end();
            const r = await handle.wait();
            return { code: r.exit_code, stdout: r.stdout, stderr: r.stderr };
          }
          const r = await session.runCommand(
            { command_id: id(), program: argv[0]!, args: argv.slice(1), env },
            options,
          );
          return { code: r.exit_code, stdout: r.stdout, stderr: r.stderr };
        },
        file,
        job,
        "from the sandbox",
      );
    },
    async openStream(file) {
      if (opts.openStream) return opts.openStream(file);
      const { Readable } = await import("node:stream");
      // Ranged reads through runCommand (tail seeks on a regular file): memory stays bounded by one chunk,
      // whatever the artifact's size, on any provider that runs commands.
      const chunk = opts.chunkBytes ?? 4 * 1024 * 1024;
      async function* ranges(): AsyncGenerator<Buffer> {
        for (let offset = 0; ; offset += chunk) {
          const r = await session.runCommand({
            command_id: id(),
            program: "sh",
            args: ["-c", RANGE, "range", file, String(offset + 1), String(chunk)],
          });
          if (r.exit_code !== 0)
            throw new RunnerError("io_error", `could not read ${file} at ${offset}: ${r.stderr.trim()}`);
          const bytes = Buffer.from(r.stdout, "base64");
          if (bytes.length > 0) yield bytes;
          if (bytes.length < chunk) return;
        }
      }
      return Readable.from(ranges());
    },
  };
}
