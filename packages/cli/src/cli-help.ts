import { VERSION } from "./cli-base.js";

/** The usage text of the CLI and of each command. */
export const HELP: Record<string, string> = {
  main: `roder-runner ${VERSION}: run commands in remote sandboxes (local, http, fly, e2b)

Usage: roder-runner <command> [options]

Commands:
  providers [--json]                     installed providers, capabilities, setup hints
  exec --destination D -- PROGRAM ARGS   run a command (streams output, exits with its code)
  cp SRC DST                             copy between host paths and runner:PATH
  export PATH [--recursive]              export an artifact to the destination's bucket
  snapshot [list|restore ID|rm ID]       snapshot a kept session; list, restore, delete snapshots
  close                                  close a kept session (idempotent)
  serve [--provider local]               serve the HTTP runner protocol in front of a provider
  sweep --provider P --owner O          remove expired sessions a crashed caller left (fly, e2b, local, http)

Run 'roder-runner <command> --help' for a command's options.
Exit codes: 0 ok, 1 failure, 2 usage, 3 configuration, 4 provider/API error, 124 timeout, 130 interrupted,
137 killed;
exec exits with the command's own code.
Secrets come from the environment only (RODER_SECRET_<ID>_<FIELD>, E2B_API_KEY, FLY_API_TOKEN, ...).`,
  providers:
    "Usage: roder-runner providers [--json]\n  Lists installed providers with their capabilities and setup hints (names of missing env variables, never values).",
  exec: `Usage: roder-runner exec (--destination FILE|ID | --session STATE) [options] -- PROGRAM [ARGS...]
  --destination, -d FILE|ID   destination JSON/TOML file, or a built-in id: local
  --session, -s FILE|-        resume the session stored in FILE (from --keep); - reads stdin
  --keep                      leave the session up and write its RunnerSessionState JSON
  --state-out FILE|-          where --keep writes the state (file, mode 0600; - = stdout, and the command's
                              stdout then goes to stderr; default stderr)
  -i, --interactive           keep stdin open and forward it (also from a terminal); piped stdin is
                              forwarded without -i
  -t, --tty                   run the command on a terminal (size from ours, resized with it; our terminal
                              in raw mode, so Ctrl-C reaches the command)
  --timeout MS                kill the command after MS milliseconds (exit 124)
  --cwd PATH                  working directory (runner path)
  --env K=V                   environment pair (repeatable)`,
  cp: "Usage: roder-runner cp (--destination D | --session S) [--keep] SRC DST\n  One of SRC/DST is runner:PATH, the other a host path; - is stdin (as SRC) or stdout (as DST).\n  Streams with bounded memory; progress (bytes, percent, rate) on a terminal.",
  export:
    "Usage: roder-runner export (--destination D | --session S) PATH [--recursive]\n  Prints the RunnerArtifactExportResult as JSON; shows progress on a terminal.",
  snapshot: `Usage: roder-runner snapshot --session S           take one: prints the RunnerSnapshotRef as JSON
       roder-runner snapshot list [--json]            the snapshots taken from this CLI
       roder-runner snapshot restore ID|FILE [--state-out FILE|-]
                                                      a new session from it; its state on stdout (or FILE)
       roder-runner snapshot rm ID|FILE               delete it (local store, runner server) and forget it
  The index lives in RODER_RUNNER_STATE_DIR (default $XDG_STATE_HOME/roder-runner or ~/.local/state/roder-runner).`,
  close: "Usage: roder-runner close --session S\n  Idempotent: a session already closed or expired exits 0.",
  sweep:
    "Usage: roder-runner sweep --provider fly|e2b|local|http --owner OWNER [--app APP] [--root DIR] [--url URL] [--dry-run] [--json]\n  Lists the sessions tagged with owner OWNER and removes those past their expiry.\n  fly: in app APP (needs --app); e2b: E2B_API_KEY; local: workspaces under DIR (default the provider's root);\n  http: the server at URL (or RODER_RUNNER_HTTP_URL), token RODER_RUNNER_HTTP_TOKEN.",
  serve: `Usage: roder-runner serve [--provider local] [--port N] [--host 127.0.0.1] [options]
  Token from RODER_RUNNER_SERVER_TOKEN. Stops on SIGINT/SIGTERM. What weakens isolation is this operator's
  choice, never a client's (clients asking for it get 403 config_refused):
  --isolation bwrap|none      every session under bubblewrap (default where bwrap is installed, local
                              provider); 'none' runs commands as this user on this host (a warning is printed)
  --host-is-sandbox           with --isolation none: this host IS the sandbox (a Fly machine, a VM or container
                              of its own), so the file API and cwd address its whole view, not the workspace
  --allow-host-network        clients may ask for network "host"
  --allow-keep-workspaces     clients may ask for delete_on_close false
  --max-output-bytes N        cap on a client's output_limit_bytes (default 16 MiB)
  --allow-endpoint URL        a bucket endpoint clients may name for the server's secrets (repeatable)
  --allow-host-paths          clients may name paths of this host (manifest entry sources, provider_native
                              mounts, workspace_dir/snapshot_dir/read_roots)
  --strict-config             refuse config keys the backend does not know (default: ignored and listed)
  --session-ttl S             sessions created without ttl_seconds close after S idle seconds (default 3600;
                              0 = never)
  --public-url URL            the URL clients reach this server by (port previews are handed out under it)
  --max-sessions N            live sessions at most (default 1000; more are refused with 429)`,
};
