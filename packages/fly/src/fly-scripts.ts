/**
 * Fixed shell programs run through exec (POSIX sh + coreutils: timeout, setsid, stat, base64, tail, head).
 * User bytes (paths, argv, env values) are passed as positional arguments, never spliced into the script, so
 * no quoting is involved.
 *
 * A command lives in a directory of its own in the machine (`<root>/.roder/cmd/<hash of the command id>`):
 * `out` and `err` (its output), `pid` (the process group of `timeout`, which holds the command and its
 * children), `t0`/`t1` (start and end, ns), `exit` (written last: its exit status), `cancelled` (a cancel killed
 * it). `<dir>.cancel`, beside it, is a cancel that came before the start. Any exec can read them: a command
 * outlives the exec that started it, and any client can follow it.
 */

/**
 * Waits up to $4 seconds (tenths) for the command in $1 to end (mode `done`) or to have output past the offsets
 * $2/$3 (mode `output`), then prints `exit|-`, `cancelled 0|1`, the sizes of out and err, and up to $5 bytes
 * of each stream from its offset as base64, one per line (the header also has start and end in ns and the time
 * limit in seconds). Exit 93: no such command (or not launch $7).
 */
const POLL = [
  "poll() {",
  '  d="$1"; oo="$2"; eo="$3"; n="$4"; max="$5"; mode="$6"; i=0',
  '  [ -d "$d" ] || exit 93',
  // With a launch id ($7), only that launch of the command id counts (an earlier run of the same id does not).
  '  [ -z "$7" ] || [ "$(cat -- "$d/launch" 2>/dev/null)" = "$7" ] || exit 93',
  "  while :; do",
  '    [ -e "$d/exit" ] && break',
  '    if [ "$mode" = output ]; then',
  '      os=$(stat -c %s -- "$d/out" 2>/dev/null || echo 0); es=$(stat -c %s -- "$d/err" 2>/dev/null || echo 0)',
  '      [ "$os" -gt "$oo" ] || [ "$es" -gt "$eo" ] && break',
  "    fi",
  '    [ "$i" -ge "$n" ] && break',
  "    sleep 0.1; i=$((i+1))",
  "  done",
  // The exit status is read before the sizes: when it is there, the sizes are final.
  '  ex=$(cat -- "$d/exit" 2>/dev/null) || ex=-',
  '  [ -e "$d/cancelled" ] && c=1 || c=0',
  '  os=$(stat -c %s -- "$d/out" 2>/dev/null || echo 0); es=$(stat -c %s -- "$d/err" 2>/dev/null || echo 0)',
  '  t0=$(cat -- "$d/t0" 2>/dev/null || echo 0); t1=$(cat -- "$d/t1" 2>/dev/null || echo 0)',
  '  lim=$(cat -- "$d/limit" 2>/dev/null || echo 0)',
  '  printf "%s %s %s %s %s %s %s\\n" "$ex" "$c" "$os" "$es" "$t0" "$t1" "$lim"',
  '  tail -c +$((oo+1)) -- "$d/out" 2>/dev/null | head -c "$max" | base64 -w0; echo',
  '  tail -c +$((eo+1)) -- "$d/err" 2>/dev/null | head -c "$max" | base64 -w0; echo',
  "}",
].join("\n");

/**
 * $1 command dir, $2 cwd, $3 timeout (seconds, 0 = none), $4 tenths of a second to wait, $5 max bytes per
 * stream, $6 wait mode, $7 launch id (written in the command's directory). The command comes on stdin, one line per item: `A BASE64(arg)` for argv in order and
 * `E NAME BASE64(VALUE)` for env pairs, so neither env values (signed URLs, tokens) nor argv are on a command
 * line (a `pkill -f` of the user's cannot hit the runner). Starts the command detached (its own session,
 * output to files), then answers like POLL. Exit 97: a command with this id is running.
 */
export const START = [
  POLL,
  'd="$1"; cwd="$2"; t="$3"; n="$4"; max="$5"; mode="$6"; launch="$7"',
  'mkdir -p -- "$(dirname -- "$d")" || exit 94',
  'if ! mkdir -- "$d" 2>/dev/null; then [ -e "$d/exit" ] || exit 97; rm -rf -- "$d"; mkdir -- "$d" || exit 94; fi',
  'printf %s "$launch" > "$d/launch" && printf %s "$t" > "$d/limit" || exit 94',
  "argc=0",
  'while read -r kind k v; do case "$kind" in',
  '  E) val=$(printf %s "$v" | base64 -d; printf x); export "$k=${val%x}" ;;',
  '  A) val=$(printf %s "$k" | base64 -d; printf x); export "RODER_ARG_$argc=${val%x}"; argc=$((argc+1)) ;;',
  "esac; done",
  "export RODER_ARGC=$argc",
  // Finished commands' files are kept 10 minutes (a late follower can still read them), then removed.
  '(find "$(dirname -- "$d")" -mindepth 2 -maxdepth 2 -name exit -mmin +10 2>/dev/null | while read -r f; do rm -rf -- "${f%/exit}"; done) > /dev/null 2>&1 &',
  // The runner: timeout makes its own process group (the pid file names it) and signals all of it at the limit.
  // When it cannot even start (E2BIG: an env value or argument over Linux's 128 KiB), the failure is its result.
  "{ setsid sh -c '" +
    [
      'd="$1"; cwd="$2"; t="$3"; i=0; set --',
      'while [ "$i" -lt "$RODER_ARGC" ]; do eval "set -- \\"\\$@\\" \\"\\$RODER_ARG_$i\\""; unset "RODER_ARG_$i"; i=$((i+1)); done',
      "unset RODER_ARGC",
      'date +%s%N > "$d/t0"',
      'if cd -- "$cwd" 2>/dev/null; then',
      '  timeout -k 1 "$t" "$@" < /dev/null > "$d/out" 2> "$d/err" & p=$!',
      '  echo "$p" > "$d/pid"',
      // A cancel that came before the start (KILL "arm"): whichever of the two comes second sees the other.
      '  if [ -e "$d.cancel" ]; then : > "$d/cancelled"; kill -s KILL -- "-$p" 2>/dev/null || kill -s KILL "$p"; rm -f -- "$d.cancel"; fi',
      '  wait "$p"; code=$?',
      'else echo "roder: no such directory: $cwd" > "$d/err"; : > "$d/out"; code=126; fi',
      'date +%s%N > "$d/t1"',
      'printf %s "$code" > "$d/exit.tmp" && mv -f -- "$d/exit.tmp" "$d/exit"',
    ].join("\n") +
    '\' roder-cmd "$d" "$cwd" "$t" || { c=$?; [ -e "$d/exit" ] || { echo "roder: the command could not start (exit $c): an argument or environment value too large?" >> "$d/err"; printf 126 > "$d/exit"; }; }; } < /dev/null > /dev/null 2>&1 &',
  'poll "$d" 0 0 "$n" "$max" "$mode" "$launch"',
].join("\n");

/** $1 command dir, $2 out offset, $3 err offset, $4 tenths to wait, $5 max bytes per stream, $6 mode, [$7 launch]. */
export const FOLLOW = [POLL, 'poll "$1" "$2" "$3" "$4" "$5" "$6" "$7"'].join("\n");

/**
 * $1 command dir, [$2 "arm"], [$3 signal name, default KILL]: signals the command's process group. Exit 3 when it is not running. With $2 = "arm" (an aborted
 * call whose command may not have started yet) it first leaves a cancel marker that START checks after writing
 * the pid: whichever comes second sees the other, so the command is killed or never runs.
 */
export const KILL = [
  'd="$1"',
  'if [ "$2" = arm ]; then mkdir -p -- "$(dirname -- "$d")" && : > "$d.cancel"; fi',
  '[ -e "$d/exit" ] && { rm -f -- "$d.cancel"; exit 3; }',
  'p=$(cat -- "$d/pid" 2>/dev/null) || exit 3',
  'kill -s 0 -- "-$p" 2>/dev/null || kill -s 0 "$p" 2>/dev/null || exit 3',
  // dash's kill takes no signal name before "--" ("kill -KILL -- -PID" fails): -s works in every sh.
  'sig="${3:-KILL}"',
  '[ "$sig" = KILL ] && : > "$d/cancelled"',
  'kill -s "$sig" -- "-$p" 2>/dev/null || kill -s "$sig" "$p"',
  'rm -f -- "$d.cancel"',
].join("\n");

/** $1 workspace root, $2 marker: creates the workspace and writes the marker resumeSession checks. */
export const MARK = [
  'mkdir -p -- "$1/.roder" || exit 94',
  'printf %s "$2" > "$1/.roder/session" || exit 94',
].join("\n");

/** $1 workspace root, $2 marker: exit 0 when the marker written at create is still there. */
export const CHECK_MARK = ['[ "$(cat -- "$1/.roder/session" 2>/dev/null)" = "$2" ] || exit 98'].join("\n");

/** Resolves $1 (real path) and checks it is under one of the roots given after it; prints nothing. */
const CONFINE = (first: number) =>
  [
    'p=$(realpath -m -- "$1") || exit 90',
    "ok=0",
    `shift ${first}; for a in "$@"; do r=$(realpath -m -- "$a"); case "$r" in /) ok=1;; esac; case "$p" in "$r"|"$r"/*) ok=1;; esac; done`,
    '[ "$ok" = 1 ] || exit 91',
  ].join("\n");

/**
 * $1 path, $2 offset, $3 max bytes, then the allowed roots: prints the file's size, then up to $3 bytes from
 * $2 as base64.
 */
export const READ = [
  'off="$2"; max="$3"',
  CONFINE(3),
  '[ -d "$p" ] && exit 92',
  '[ -e "$p" ] || exit 93',
  'stat -L -c %s -- "$p" || exit 94',
  'tail -c +$((off+1)) -- "$p" | head -c "$max" | base64 -w0',
].join("\n");

/**
 * $1 path, $2 temp name, $3 part (`first`, `next`, `last`, `only`), $4 root; stdin: base64 of the part. Parts go
 * to a temp file in the same directory (`first` truncates, the others append); `last`/`only` rename it over the
 * path: a reader never sees a half-written file.
 */
export const WRITE = [
  'tmp="$2"; part="$3"',
  CONFINE(3),
  '[ -d "$p" ] && exit 92',
  'd=$(dirname -- "$p"); mkdir -p -- "$d" || exit 94',
  't="$d/.roder-tmp-$tmp"',
  'case "$part" in first|only) base64 -d > "$t" ;; *) [ -e "$t" ] || exit 96; base64 -d >> "$t" ;; esac || { rm -f -- "$t"; exit 95; }',
  'case "$part" in last|only) mv -f -- "$t" "$p" || { rm -f -- "$t"; exit 94; } ;; esac',
].join("\n");

/** $1 path, $2 temp name: removes the temp file of an abandoned chunked write. */
export const DISCARD = ['d=$(dirname -- "$(realpath -m -- "$1")")', 'rm -f -- "$d/.roder-tmp-$2"'].join("\n");

export const EXIT = {
  outside: 91,
  isDir: 92,
  missing: 93,
  io: 94,
  decode: 95,
  tempGone: 96,
  running: 97,
  badPath: 90,
} as const;
