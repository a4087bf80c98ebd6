#!/usr/bin/env node
import { main } from "./cli.js";

const code = await main(process.argv.slice(2), {
  stdout: (s) => process.stdout.write(s),
  stderr: (s) => process.stderr.write(s),
  env: process.env,
  isTTY: Boolean(process.stderr.isTTY),
});
// Exit once stdout has drained (keep-alive sockets of SDK clients would otherwise hold the process).
process.stdout.write("", () => process.exit(code));
