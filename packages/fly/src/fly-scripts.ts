/**
 * Fixed shell programs run through exec. User bytes (paths, argv, env values) are passed as positional
 * arguments, never spliced into the script, so no quoting is involved.
 */

/**
 * $1 cwd, $2 pid file, $3 timeout (seconds, 0 = none), then argv. Env pairs come on stdin, one
 * `NAME BASE64(VALUE)` per line, so values (signed URLs, tokens) are never on a command line.
 */
export const RUN = [
  'cd -- "$1" 2>/dev/null || { echo "roder: no such directory: $1" >&2; exit 126; }',
  'pidf="$2"; t="$3"; shift 3',
  'while read -r k v; do [ -n "$k" ] || continue; val=$(printf %s "$v" | base64 -d; printf x); export "$k=${val%x}"; done',
  'mkdir -p -- "$(dirname -- "$pidf")" && echo $$ > "$pidf"',
  // A cancel that came before the start (see KILL's "arm"): do not run at all.
  '[ -e "$pidf.cancel" ] && { rm -f -- "$pidf.cancel" "$pidf"; exit 137; }',
  // timeout makes its own process group and signals all of it: grandchildren die too. The pid file names it.
  'exec timeout -k 1 "$t" "$@" < /dev/null',
].join("\n");

/**
 * $1 pid file: kills the command's process group. Exit 3 when it is not running. With $2 = "arm" (an
 * aborted call whose command may not have started yet) it first leaves a cancel marker that RUN checks after
 * writing its pid: whichever comes second sees the other, so the command is killed or never starts.
 */
export const KILL = [
  'if [ "$2" = arm ]; then mkdir -p -- "$(dirname -- "$1")" && : > "$1.cancel"; fi',
  'p=$(cat -- "$1" 2>/dev/null) || exit 3',
  'kill -0 "$p" 2>/dev/null || { rm -f -- "$1"; exit 3; }',
  // dash's kill takes no signal name before "--" ("kill -KILL -- -PID" fails): -s works in every sh.
  'kill -s KILL -- "-$p" 2>/dev/null || kill -s KILL "$p"',
  'rm -f -- "$1" "$1.cancel"',
].join("\n");

/** Resolves $1 (real path) and checks it is under one of the roots $2…; prints it. Exit 91 when outside. */
const CONFINE = [
  'p=$(realpath -m -- "$1") || exit 90',
  "ok=0",
  'shift; for a in "$@"; do r=$(realpath -m -- "$a"); case "$p" in "$r"|"$r"/*) ok=1;; esac; done',
  '[ "$ok" = 1 ] || exit 91',
].join("\n");

/** $1 path, $2… allowed roots: writes the file's bytes as base64 on stdout. */
export const READ = [CONFINE, '[ -d "$p" ] && exit 92', '[ -e "$p" ] || exit 93', 'base64 -w0 < "$p"'].join(
  "\n",
);

/** $1 path, $2 root; stdin: base64 of the new contents. Atomic: temp file in the same directory, then rename. */
export const WRITE = [
  CONFINE,
  '[ -d "$p" ] && exit 92',
  'd=$(dirname -- "$p"); mkdir -p -- "$d" || exit 94',
  't="$d/.roder-tmp-$$"',
  'base64 -d > "$t" || { rm -f -- "$t"; exit 95; }',
  'mv -f -- "$t" "$p" || { rm -f -- "$t"; exit 94; }',
].join("\n");

export const EXIT = { outside: 91, isDir: 92, missing: 93, io: 94, decode: 95, badPath: 90 } as const;
