import { RunnerError } from "@roder/runner-contract";
import { PART_UPLOADER_PY } from "./artifact-parts-py.js";

/** One part upload the store will accept: a signed URL (a short-lived credential) for part `number`. */
export interface PartUploadJob {
  size: number;
  partSize: number;
  /** Part uploads in flight at once. */
  parallelism: number;
  /** Signed URL of part n at index n - 1. */
  urls: string[];
  /** Headers every part request carries besides Content-Length and Content-MD5 (no secret). */
  headers: Record<string, string>;
  /** Called as each part is acknowledged by the store, with that part's size (progress only). */
  onPartDone?: (bytes: number) => void;
  /** Aborting stops the uploads in flight (the caller then aborts the multipart upload). */
  signal?: AbortSignal;
}

/** What the uploader read and sent: the file's sha256 and each part's MD5 and the store's answer (ETag). */
export interface PartUploadResult {
  sha256: string;
  parts: { number: number; md5Base64: string; etag?: string }[];
}

/**
 * Runs the part script where the file is: argv and an environment that carries the signed URLs. Runners that
 * can stream output call `onStdoutLine` with each line as the script prints it (progress); the rest report
 * everything at the end.
 */
export type ScriptRunner = (
  argv: string[],
  env: [string, string][],
  onStdoutLine?: (line: string) => void,
  signal?: AbortSignal,
) => Promise<{ code: number | null; stdout: string; stderr: string }>;

/** Splits a byte stream into lines for `onStdoutLine`, holding at most one partial line. */
export function lineSplitter(onLine: (line: string) => void): { push(text: string): void; end(): void } {
  let rest = "";
  return {
    push(text) {
      rest += text;
      let i = rest.indexOf("\n");
      while (i >= 0) {
        onLine(rest.slice(0, i));
        rest = rest.slice(i + 1);
        i = rest.indexOf("\n");
      }
      if (rest.length > 4096) rest = rest.slice(-4096);
    },
    end() {
      if (rest) onLine(rest);
      rest = "";
    },
  };
}

export const partCount = (size: number, partSize: number) => Math.max(1, Math.ceil(size / partSize));

/** The env variable that carries part n's URL (never argv, never a file). */
export const partUrlEnv = (n: number) => `RODER_PART_URL_${n}`;

/**
 * Uploads a file in parts, in parallel, with one sequential read that hashes it (POSIX sh, coreutils, curl).
 * $1 the Python uploader, $2 file, $3 size, $4 part size, $5 parallelism; the rest are curl header arguments.
 * Part n's URL is in RODER_PART_URL_n. Prints "part N MD5HEX ETAG" per part and "sha256 HEX" at the end.
 *
 * Where python3 is present and no proxy is set, the script hands over to PART_UPLOADER_PY (same plan, same
 * lines, a third of the CPU: one process, no pipes). Otherwise, the portable path: fd 3 walks the file
 * once; each part goes through `tee` into one sha256 process (a fifo, fd 4) and into md5sum. As soon as a
 * part's MD5 is known its upload starts in the background (curl reading the range again, from the page
 * cache, through `dd` in 1 MiB blocks, with that Content-MD5), while the next part is hashed. A token fifo
 * (fd 5) bounds the uploads in flight. The URL reaches curl as its config on a here-document (a pipe), never
 * argv. A failed part (after 3 tries for 5xx, 408, 429 or a broken connection) stops new parts; the script
 * waits for the uploads in flight so that nothing is still sending when it exits.
 */
export const PART_SCRIPT = [
  'py="$1"; shift',
  'if [ -z "${http_proxy-}${https_proxy-}${HTTP_PROXY-}${HTTPS_PROXY-}${all_proxy-}${ALL_PROXY-}" ] &&',
  "  command -v python3 >/dev/null 2>&1 &&",
  "  python3 -I -c 'import sys; sys.exit(sys.version_info < (3, 5))' 2>/dev/null; then",
  '  exec python3 -I -c "$py" "$@"',
  "fi",
  'f="$1"; size="$2"; ps="$3"; par="$4"; shift 4',
  "t=$(mktemp -d) || exit 95",
  "trap 'rm -rf -- \"$t\"' EXIT",
  'mkfifo "$t/sha" "$t/tok" || exit 95',
  // dd's block: the largest power of two up to 1 MiB that divides the part size (parts start on one).
  "bs=1048576; while [ $((ps % bs)) -ne 0 ]; do bs=$((bs / 2)); done",
  // $1 bytes from fd 0 in whole blocks; a last, partial block through head (exactly $1 bytes, never more).
  'rd() { if [ $(($1 % bs)) -eq 0 ]; then dd bs="$bs" count=$(($1 / bs)) 2>/dev/null; else head -c "$1"; fi; }',
  // openssl uses the CPU's SHA extensions where coreutils' sha256sum does not.
  "if command -v openssl >/dev/null 2>&1; then shacmd='openssl dgst -sha256 -r'; else shacmd=sha256sum; fi",
  '$shacmd < "$t/sha" | cut -c1-64 > "$t/sum" &',
  'exec 3< "$f" 4> "$t/sha" 5<> "$t/tok"',
  'i=0; while [ "$i" -lt "$par" ]; do echo >&5; i=$((i + 1)); done',
  // hex MD5 → base64 (Content-MD5), with shell builtins and base64 only.
  'b64() { h=$1; o=; while [ -n "$h" ]; do b=$((0x${h%"${h#??}"})); o="$o\\\\$((b / 64))$((b / 8 % 8))$((b % 8))"; h=${h#??}; done; printf "$o" | base64; }',
  "put() {",
  "  n=$1; off=$2; len=$3; hex=$4; shift 4",
  '  md5=$(b64 "$hex"); eval "u=\\$RODER_PART_URL_$n"; a=0',
  "  while :; do",
  "    a=$((a + 1))",
  '    code=$({ dd bs="$bs" skip=$((off / bs)) count=0 2>/dev/null; rd "$len"; } < "$f" | curl -sS -X PUT -T - -K /dev/fd/6 \\',
  '      -H "Content-Length: $len" -H "Content-MD5: $md5" -H "Transfer-Encoding:" -H "Expect:" "$@" \\',
  '      -D "$t/h$n" -o "$t/b$n" -w "%{http_code}" 6<<EOF',
  'url = "$u"',
  "EOF",
  "    )",
  '    case "$code" in',
  '      2??) etag=$(sed -n "s/^[Ee][Tt][Aa][Gg]: *//p" "$t/h$n" | tr -d "\\r\\""); echo "part $n $hex ${etag:--}"; return 0 ;;',
  '      000|5??|408|429) [ "$a" -lt 3 ] && { sleep 1; continue; } ;;',
  "    esac",
  '    echo "part $n failed with HTTP $code: $(head -c 300 "$t/b$n" 2>/dev/null)" >&2; return 1',
  "  done",
  "}",
  "n=1; off=0",
  'while [ "$off" -lt "$size" ] || [ "$n" = 1 ]; do',
  '  len=$((size - off)); [ "$len" -gt "$ps" ] && len=$ps',
  '  hex=$(rd "$len" <&3 | tee /dev/fd/4 | md5sum | cut -c1-32) || exit 96',
  "  read -r _ <&5",
  '  [ -e "$t/fail" ] && break',
  '  { exec 3<&- 4>&-; put "$n" "$off" "$len" "$hex" "$@" || : > "$t/fail"; echo >&5; } &',
  "  n=$((n + 1)); off=$((off + len))",
  "done",
  "exec 4>&-",
  "wait",
  '[ -e "$t/fail" ] && exit 97',
  'echo "sha256 $(cat "$t/sum")"',
].join("\n");

/** Runs PART_SCRIPT through `run` and checks what it printed against the plan. */
export async function uploadPartsWith(
  run: ScriptRunner,
  file: string,
  job: PartUploadJob,
  where: string,
): Promise<PartUploadResult> {
  const count = partCount(job.size, job.partSize);
  if (job.urls.length !== count)
    throw new RunnerError("internal", `part plan has ${job.urls.length} URLs for ${count} parts`);
  const headerArgs = Object.entries(job.headers).flatMap(([k, v]) => ["-H", `${k}: ${v}`]);
  const reported = new Set<number>();
  const onLine = job.onPartDone
    ? (line: string) => {
        const m = /^part (\d+) [0-9a-f]{32} \S+$/.exec(line.trim());
        const n = m ? Number(m[1]) : 0;
        if (n < 1 || n > count || reported.has(n)) return;
        reported.add(n);
        job.onPartDone!(Math.min(job.partSize, job.size - (n - 1) * job.partSize));
      }
    : undefined;
  const r = await run(
    [
      "sh",
      "-c",
      PART_SCRIPT,
      "parts",
      PART_UPLOADER_PY,
      file,
      String(job.size),
      String(job.partSize),
      String(job.parallelism),
      ...headerArgs,
    ],
    job.urls.map((u, i) => [partUrlEnv(i + 1), u]),
    onLine,
    job.signal,
  );
  // Runners that cannot stream: the parts are reported once the script has ended.
  if (onLine) for (const line of r.stdout.split("\n")) onLine(line);
  const scrub = (s: string) => s.replace(/https?:\/\/\S+/g, "<url>").trim();
  if (r.code !== 0)
    throw new RunnerError(
      "upload_failed",
      `part upload ${where} failed (exit ${r.code}): ${scrub(r.stderr).slice(0, 2000)}`,
    );
  const parts: PartUploadResult["parts"] = [];
  let sha256 = "";
  for (const line of r.stdout.split("\n")) {
    const m = /^part (\d+) ([0-9a-f]{32}) (\S+)$/.exec(line.trim());
    if (m)
      parts.push({
        number: Number(m[1]),
        md5Base64: Buffer.from(m[2]!, "hex").toString("base64"),
        ...(m[3] !== "-" ? { etag: m[3]! } : {}),
      });
    const s = /^sha256 ([0-9a-f]{64})$/.exec(line.trim());
    if (s) sha256 = s[1]!;
  }
  parts.sort((a, b) => a.number - b.number);
  if (!sha256 || parts.length !== count || parts.some((p, i) => p.number !== i + 1))
    throw new RunnerError(
      "upload_failed",
      `part upload ${where} reported ${parts.length} of ${count} parts${sha256 ? "" : " and no sha256"}: ${scrub(r.stderr).slice(0, 500)}`,
    );
  return { sha256, parts };
}
