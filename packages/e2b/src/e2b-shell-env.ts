/** bash's read-only variables: an assignment to one in front of a command stops it ("readonly variable"). */
const BASH_READONLY = new Set(["BASHOPTS", "BASH_VERSINFO", "EUID", "PPID", "SHELLOPTS", "UID"]);

/**
 * E2B starts every command through a login shell (`bash -l -c line`; a PTY's `bash -i -l`), whose profile may set
 * PATH and others again (Debian's `/etc/profile` resets PATH): a command's env pairs would not reach it as given.
 * So each value travels in the process env under a carrier name (`RODER_ENV_<n>`, never on a command line), and
 * the line starts by moving the carriers to the requested names in front of the program, after the profile ran:
 * `__roder_0=$RODER_ENV_0; builtin unset RODER_ENV_0; PATH="$__roder_0" ` + the quoted argv. The carriers are
 * unset before the program starts, and the shell variables are not exported: the program's env is the asked one.
 * Names are checked by the caller (`[A-Za-z_][A-Za-z0-9_]*`).
 */
export function shellEnv(env: Record<string, string>): { carriers: Record<string, string>; head: string } {
  const names = Object.keys(env).filter((k) => !BASH_READONLY.has(k));
  const carriers: Record<string, string> = {};
  // A read-only name stays as given (bash would refuse the assignment; the profile cannot change it either).
  for (const [k, v] of Object.entries(env)) if (BASH_READONLY.has(k)) carriers[k] = v;
  if (names.length === 0) return { carriers, head: "" };
  names.forEach((k, i) => {
    carriers[`RODER_ENV_${i}`] = env[k]!;
  });
  const save = names.map((_, i) => `__roder_${i}=$RODER_ENV_${i}`).join(" ");
  const unset = names.map((_, i) => `RODER_ENV_${i}`).join(" ");
  const set = names.map((k, i) => `${k}="$__roder_${i}"`).join(" ");
  return { carriers, head: `${save}; builtin unset ${unset}; ${set} ` };
}
