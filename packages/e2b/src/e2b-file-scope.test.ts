import { randomUUID } from "node:crypto";
import { existsSync } from "node:fs";
import { RunnerError } from "@roder/runner-contract";
import { createLocalProvider } from "@roder/runner-local";
import { type E2bStandIn, startE2bStandIn } from "@roder/runner-testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createE2bProvider } from "./e2b-provider.js";
import type { E2bSession } from "./e2b-session.js";

// An E2B sandbox is its own machine: the session's file API and a command's cwd address the sandbox's whole view
// (file scope "sandbox"), with typed errors where the sandbox refuses. The stand-in's sandbox is one bubblewrap
// sandbox of the local runner (uid 1000, read-only system, private /tmp): what it refuses, the host never sees.
let standIn: E2bStandIn;
let session: E2bSession;

beforeAll(async () => {
  standIn = await startE2bStandIn({ backend: createLocalProvider() });
  session = await createE2bProvider({
    apiUrl: standIn.apiUrl,
    sandboxUrl: standIn.sandboxUrl,
    domain: standIn.domain,
    env: { E2B_API_KEY: standIn.apiKey },
  }).createSession({ config: { template: "base" } });
}, 60_000);
afterAll(async () => {
  await session?.close();
  await standIn?.stop();
});

let n = 0;
const sh = (script: string, cwd?: string) =>
  session.runCommand({
    command_id: `fs${++n}`,
    program: "sh",
    args: ["-c", script],
    ...(cwd ? { cwd } : {}),
  });
const text = async (path: string) => new TextDecoder().decode((await session.readFile({ path })).contents);

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    expect(RunnerError.isInstance(e), String(e)).toBe(true);
    return (e as RunnerError).code;
  }
  throw new Error("expected a failure");
}

describe("e2b file scope: the sandbox's own view", () => {
  it("publishes file_scope sandbox", () => {
    expect(createE2bProvider().limits().file_scope).toBe("sandbox");
  });

  it("reads and writes in /tmp and the home, relative paths against the workspace, `..` within the sandbox", async () => {
    const t = randomUUID();
    await session.writeFile({ path: `/tmp/scope-${t}/deep/a.txt`, contents: "in tmp" });
    expect((await sh(`cat /tmp/scope-${t}/deep/a.txt`)).stdout).toBe("in tmp");
    // The workspace is /home/user (the sandbox user's home): relative paths land there.
    await session.writeFile({ path: `rel-${t}.txt`, contents: "rel" });
    expect((await sh(`cat /home/user/rel-${t}.txt`)).stdout).toBe("rel");
    // `..` climbs the sandbox's tree, never above its `/`.
    expect(await text(`../../tmp/scope-${t}/deep/a.txt`)).toBe("in tmp");
    expect(await text(`/../../../tmp/scope-${t}/deep/a.txt`)).toBe("in tmp");
    // A system file is the sandbox's.
    expect((await session.readFile({ path: "/etc/os-release" })).contents.length).toBeGreaterThan(0);
    await sh(`rm -rf /tmp/scope-${t} rel-${t}.txt`);
  });

  it("a command's cwd is any directory of the sandbox; a missing one or a file is a typed error", async () => {
    expect((await sh("pwd", "/tmp")).stdout).toBe("/tmp\n");
    expect((await sh("pwd", "/")).stdout).toBe("/\n");
    await sh("mkdir -p sub/inner");
    expect((await sh("pwd", "sub/inner")).stdout).toBe("/home/user/sub/inner\n");
    expect(await code(sh("pwd", `/tmp/none-${randomUUID()}`))).toBe("not_found");
    expect(await code(sh("pwd", "/etc/os-release"))).toBe("invalid_request");
  });

  it("typed errors: missing, a directory, not a regular file, refused by the sandbox, bad paths", async () => {
    const t = randomUUID();
    expect(await code(session.readFile({ path: `/tmp/none-${t}` }))).toBe("not_found");
    expect(await code(session.readFile({ path: "/tmp" }))).toBe("is_a_directory");
    await sh(`mkfifo /tmp/fifo-${t}`);
    expect(await code(session.readFile({ path: `/tmp/fifo-${t}` }))).toBe("not_a_regular_file");
    // The system is read-only to the sandbox's user; nothing is written on the host either.
    expect(await code(session.writeFile({ path: `/usr/roder-${t}`, contents: "x" }))).toBe("read_only");
    expect(existsSync(`/usr/roder-${t}`)).toBe(false);
    // Over a directory (and over the workspace or the sandbox's root, refused before anything is sent).
    await sh(`mkdir -p /tmp/dir-${t}/d`);
    expect(await code(session.writeFile({ path: `/tmp/dir-${t}/d`, contents: "x" }))).toBe("is_a_directory");
    expect((await sh(`ls -A /tmp/dir-${t}`)).stdout).toBe("d\n"); // no temporary file left
    const before = standIn.requests.length;
    expect(await code(session.writeFile({ path: "/", contents: "x" }))).toBe("is_a_directory");
    expect(await code(session.writeFile({ path: "/home/user/", contents: "x" }))).toBe("is_a_directory");
    expect(await code(session.writeFile({ path: "a\u0000b", contents: "x" }))).toBe("invalid_request");
    expect(await code(session.readFile({ path: "" }))).toBe("invalid_request");
    expect(standIn.requests.length).toBe(before);
    await sh(`rm -rf /tmp/fifo-${t} /tmp/dir-${t}`);
  });

  it("a write replaces a symbolic link at the target instead of writing through it; reads follow links", async () => {
    const t = randomUUID();
    // (A relative link: the stand-in's backend, the local runner, resolves a workspace link on the host first,
    // where an absolute target names the host's path, not the sandbox's.)
    await session.writeFile({ path: `target-${t}`, contents: "original" });
    await sh(`ln -s target-${t} link-${t}`);
    expect(await text(`link-${t}`)).toBe("original");
    await session.writeFile({ path: `link-${t}`, contents: "replaced" });
    expect(await text(`target-${t}`)).toBe("original");
    expect((await sh(`test -L link-${t} && echo link || cat link-${t}`)).stdout).toBe("replaced");
    await sh(`rm -f target-${t} link-${t}`);
  });

  it("the sandbox's /tmp is its own: a file written there is not on the host", async () => {
    const t = randomUUID();
    await session.writeFile({ path: `/tmp/host-check-${t}`, contents: "x" });
    expect((await sh(`cat /tmp/host-check-${t}`)).stdout).toBe("x");
    expect(existsSync(`/tmp/host-check-${t}`)).toBe(false);
    await sh(`rm -f /tmp/host-check-${t}`);
  });
});
