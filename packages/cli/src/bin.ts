#!/usr/bin/env node
import { main } from "./cli.js";

// The CLI's stderr belongs to the user's command and our one-line errors: keep the AWS SDK's Node-version
// notice out of it (a user can still opt in by setting the variable to anything else).
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";

// A reader that goes away (`| head`) is an interruption like Ctrl-C: the command is killed and the session
// closed, rather than the CLI dying on EPIPE with the session left behind.
let stdoutGone = false;
process.stdout.on("error", (error: NodeJS.ErrnoException) => {
  if (stdoutGone || error.code !== "EPIPE") return;
  stdoutGone = true; // once: a second signal would exit at once, before the session is closed
  process.kill(process.pid, "SIGTERM");
});

const code = await main(process.argv.slice(2), {
  stdout: (s) => {
    if (!stdoutGone) process.stdout.write(s);
  },
  stderr: (s) => process.stderr.write(s),
  env: process.env,
  isTTY: Boolean(process.stderr.isTTY),
});
// Exit once stdout has drained (keep-alive sockets of SDK clients would otherwise hold the process).
if (stdoutGone) process.exit(code);
else process.stdout.write("", () => process.exit(code));
