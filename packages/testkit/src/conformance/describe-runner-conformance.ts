import { createHash, randomUUID } from "node:crypto";
import { createServer } from "node:net";
import {
  CancelledError,
  CommandNotFoundError,
  codecs,
  commandOutcome,
  type MountPlanEntry,
  MountPlanEntrySchema,
  PathOutsideWorkspaceError,
  type RemoteRunnerProvider,
  type RemoteRunnerSession,
  type RunnerDestination,
  RunnerError,
  type RunnerLimits,
  RunnerLimitsSchema,
  type RunnerOperationEvent,
  RunnerOperationEventSchema,
  type RunnerSessionState,
  type SweepableProvider,
  sweepExpiredSessions,
  UnsupportedCapabilityError,
  withObserver,
} from "@roder/runner-contract";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fileStreamChecks } from "./file-stream-checks.js";

type MaybePromise<T> = T | Promise<T>;

export interface RunnerConformanceOptions {
  /** Shown in the describe block. */
  name: string;
  createProvider: () => MaybePromise<RemoteRunnerProvider>;
  destination: RunnerDestination | (() => MaybePromise<RunnerDestination>);
  /** A second, independent provider instance for resume tests (default: `createProvider()` again). */
  createResumeProvider?: () => MaybePromise<RemoteRunnerProvider>;
  /** Secret values the provider was given: none may appear in `state()`, snapshots or errors. */
  secretValues?: string[];
  /** `reachable`: the preview URL is fetched from the host; `url-only`: only its shape is checked. */
  portPreview?: "reachable" | "url-only";
  /** Size of the large binary round trip (default 4 MiB). */
  largeFileBytes?: number;
  setup?: () => Promise<void>;
  teardown?: () => Promise<void>;
  /** Names of checks to skip (reported as skipped), for a backend that documents why. */
  skip?: string[];
  /**
   * What the session's file API and a command's `cwd` address: `workspace` (default) — confined to the
   * workspace and read roots, as `RemoteWorkspace` has it; `sandbox` — the sandbox's own view (absolute paths as
   * the sandbox sees them, relative ones against the workspace), on an isolated provider.
   */
  fileScope?: "workspace" | "sandbox";
  /**
   * Interactive commands the provider has: `stdin` (`startCommand({ stdin: true })`, `write`, `closeStdin`),
   * `pty` (stdin and `pty: { cols, rows }`, `resize`). Default: none (the checks are skipped).
   */
  interactive?: Array<"stdin" | "pty">;
  /**
   * The session has `readFileStream` and `writeFileStream` itself (files of any size with bounded memory). The
   * streamed-file checks run on every provider (through the contract's fallbacks); with this, the methods must
   * exist.
   */
  fileStreams?: boolean;
  /** The provider's published limits (default: `provider.limits(destination)`). */
  limits?: RunnerLimits;
  /**
   * Live sandboxes/sessions on the backend (machines, sandboxes, server sessions, workspace dirs): with it,
   * the suite proves an aborted or failed create leaves nothing behind.
   */
  countLiveSessions?: () => MaybePromise<number>;
  /**
   * Mount planning before create (default: `provider.planMounts(d)`): the suite checks the plan against its schema,
   * the capabilities and `validateDestination`.
   */
  planMounts?: (destination: RunnerDestination) => MountPlanEntry[];
  /** The provider's sweeper and the owner `createProvider()` tags sessions with: the suite lists and removes. */
  sweeper?: { owner: string; create: () => MaybePromise<SweepableProvider> };
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

async function thrown(fn: () => Promise<unknown>): Promise<unknown> {
  try {
    await fn();
  } catch (error) {
    return error;
  }
  throw new Error("expected the operation to fail");
}

function errorText(error: unknown): string {
  const parts: string[] = [];
  let cur: unknown = error;
  for (let depth = 0; cur && depth < 8; depth++) {
    if (cur instanceof Error) {
      parts.push(cur.name, cur.message, cur.stack ?? "", JSON.stringify(cur));
      cur = (cur as { cause?: unknown }).cause;
    } else {
      parts.push(String(cur));
      break;
    }
  }
  return parts.join("\n");
}

/**
 * The contract, checked against any provider: one vitest `describe` per call. Every provider package runs it
 * against its backend (the real thing or a local stand-in that speaks its wire protocol).
 */
export function describeRunnerConformance(options: RunnerConformanceOptions): void {
  const skip = new Set(options.skip ?? []);
  const check = (name: string, fn: () => Promise<void>, timeout?: number) =>
    skip.has(name) ? it.skip(name, fn) : it(name, fn, timeout);
  const secrets = options.secretValues ?? [];
  const large = options.largeFileBytes ?? 4 * 1024 * 1024;

  describe(`runner conformance: ${options.name}`, () => {
    let provider: RemoteRunnerProvider;
    let destination: RunnerDestination;
    let session: RemoteRunnerSession;
    let root: string;
    const opened: RemoteRunnerSession[] = [];
    let n = 0;
    const id = () => `c${++n}-${randomUUID().slice(0, 8)}`;
    const sh = (script: string, extra: Record<string, unknown> = {}) =>
      session.runCommand({ command_id: id(), program: "sh", args: ["-c", script], ...extra });

    beforeAll(async () => {
      await options.setup?.();
      provider = await options.createProvider();
      destination =
        typeof options.destination === "function" ? await options.destination() : options.destination;
      session = await provider.createSession(destination);
      opened.push(session);
      const meta = session.state().metadata as { workspace_root?: unknown } | null;
      expect(typeof meta?.workspace_root, "state().metadata.workspace_root").toBe("string");
      root = meta!.workspace_root as string;
    });

    afterAll(async () => {
      for (const s of opened) await s.close().catch(() => {});
      await options.teardown?.();
    });

    check("declares capabilities as wire data and an id", async () => {
      const caps = provider.capabilities();
      expect(codecs.RunnerCapabilities.decode(codecs.RunnerCapabilities.encode(caps))).toEqual(caps);
      expect(provider.id).toBe(destination.provider_id);
      expect(caps.command_exec).toBe(true);
    });

    check("returns exit codes as results, not errors", async () => {
      for (const code of [0, 1, 3, 42, 255]) {
        const r = await sh(`exit ${code}`);
        expect(r.exit_code).toBe(code);
      }
      const missing = await session.runCommand({ command_id: id(), program: "definitely-not-a-program-xyz" });
      expect(missing.exit_code).not.toBe(0);
    });

    check("separates stdout and stderr and echoes the command id", async () => {
      const cid = id();
      const r = await session.runCommand({
        command_id: cid,
        program: "sh",
        args: ["-c", "printf out; printf err >&2"],
      });
      expect(r).toEqual({ command_id: cid, exit_code: 0, stdout: "out", stderr: "err" });
    });

    check("passes env pairs and runs in the requested cwd", async () => {
      await session.writeFile({ path: "sub/dir/marker.txt", contents: new TextEncoder().encode("m") });
      const r = await session.runCommand({
        command_id: id(),
        program: "sh",
        args: ["-c", 'printf "%s|%s|" "$FOO" "$BAR"; pwd'],
        cwd: "sub/dir",
        env: [
          ["FOO", "a b$c"],
          ["BAR", "ünï"],
        ],
      });
      expect(r.exit_code).toBe(0);
      expect(r.stdout.startsWith("a b$c|ünï|")).toBe(true);
      expect(r.stdout.trim().endsWith("/sub/dir")).toBe(true);
    });

    check("delivers hostile argv byte for byte", async () => {
      const args = [
        "",
        " ",
        "'",
        '"',
        "\\",
        "$HOME",
        "`id`",
        "$(id)",
        "a\nb",
        "tab\there",
        "-n",
        "--",
        "ünïcødé 😀",
        "*",
        ";rm -rf /",
        "%s%n",
      ];
      const r = await session.runCommand({
        command_id: id(),
        program: "node",
        args: ["-e", "process.stdout.write(JSON.stringify(process.argv.slice(1)))", "--", ...args],
      });
      expect(r.exit_code).toBe(0);
      expect(JSON.parse(r.stdout)).toEqual(args);
    });

    check("decodes non-UTF-8 output lossily", async () => {
      const r = await session.runCommand({
        command_id: id(),
        program: "node",
        args: ["-e", "process.stdout.write(Buffer.from([0x61, 0xff, 0x62]))"],
      });
      expect(r.stdout).toBe("a\ufffdb");
    });

    check("round-trips all 256 byte values", async () => {
      const bytes = Uint8Array.from({ length: 256 }, (_, i) => i);
      await session.writeFile({ path: "bin/all.bin", contents: bytes });
      const back = await session.readFile({ path: "bin/all.bin" });
      expect(Buffer.from(back.contents).equals(Buffer.from(bytes))).toBe(true);
      // The runner sees the same bytes.
      const r = await session.runCommand({
        command_id: id(),
        program: "node",
        args: [
          "-e",
          "const b=require('fs').readFileSync('bin/all.bin');process.stdout.write(String(b.length)+':'+require('crypto').createHash('sha256').update(b).digest('hex'))",
        ],
      });
      expect(r.stdout).toBe(`256:${createHash("sha256").update(bytes).digest("hex")}`);
    });

    check(
      `round-trips a ${Math.round(large / 1024 / 1024)} MiB binary file`,
      async () => {
        const big = new Uint8Array(large);
        for (let i = 0; i < big.length; i++) big[i] = (i * 2654435761) >>> 24;
        await session.writeFile({ path: "bin/large.bin", contents: big });
        const back = await session.readFile({ path: `${root}/bin/large.bin` });
        expect(back.contents.length).toBe(big.length);
        expect(createHash("sha256").update(back.contents).digest("hex")).toBe(
          createHash("sha256").update(big).digest("hex"),
        );
      },
      120_000,
    );

    check("overwrites files and creates parents", async () => {
      await session.writeFile({ path: "deep/a/b/c.txt", contents: new TextEncoder().encode("one") });
      await session.writeFile({ path: "deep/a/b/c.txt", contents: new TextEncoder().encode("2") });
      expect(new TextDecoder().decode((await session.readFile({ path: "deep/a/b/c.txt" })).contents)).toBe(
        "2",
      );
    });

    fileStreamChecks({
      check,
      session: () => session,
      sh: (script) => sh(script),
      native: options.fileStreams === true,
      sandboxScope: options.fileScope === "sandbox",
    });

    if ((options.fileScope ?? "workspace") === "workspace") {
      check("refuses paths outside the workspace before touching the runner", async () => {
        for (const path of ["../outside.txt", "a/../../outside.txt", "/etc/passwd-roder-test", "a\u0000b"]) {
          const e = await thrown(() => session.writeFile({ path, contents: new Uint8Array([1]) }));
          expect(PathOutsideWorkspaceError.isInstance(e), `${JSON.stringify(path)}: ${e}`).toBe(true);
        }
        const r = await thrown(() => session.readFile({ path: "../../../../etc/hostname" }));
        expect(PathOutsideWorkspaceError.isInstance(r)).toBe(true);
        const c = await thrown(() => session.runCommand({ command_id: id(), program: "true", cwd: "/" }));
        expect(PathOutsideWorkspaceError.isInstance(c)).toBe(true);
      });

      check("refuses symlinks that lead outside", async () => {
        const made = await sh("ln -s /etc escape-link && ln -s /etc/hostname escape-file && echo ok");
        expect(made.stdout.trim()).toBe("ok");
        const e1 = await thrown(() => session.readFile({ path: "escape-file" }));
        expect(PathOutsideWorkspaceError.isInstance(e1), String(e1)).toBe(true);
        const e2 = await thrown(() =>
          session.writeFile({ path: "escape-link/roder-pwned", contents: new Uint8Array([1]) }),
        );
        expect(PathOutsideWorkspaceError.isInstance(e2), String(e2)).toBe(true);
        const e3 = await thrown(() => session.readFile({ path: "escape-link/hostname" }));
        expect(PathOutsideWorkspaceError.isInstance(e3)).toBe(true);
      });
    } else {
      check("the file API addresses the sandbox's own view, and nothing outside it", async () => {
        const token = randomUUID();
        // A file in the sandbox's /tmp, through the file API, read by a command, and back.
        await session.writeFile({
          path: `/tmp/roder-scope-${token}`,
          contents: new TextEncoder().encode(token),
        });
        const seen = await sh(
          `cat /tmp/roder-scope-${token}; printf ' %s' ${token} > /tmp/roder-scope-${token}.b`,
        );
        expect(seen.stdout).toBe(token);
        const back = await session.readFile({ path: `/tmp/roder-scope-${token}.b` });
        expect(new TextDecoder().decode(back.contents)).toBe(` ${token}`);
        // A system file, and a command whose cwd is /tmp.
        const hostname = await session.readFile({ path: "/etc/hostname" });
        expect(hostname.contents.length).toBeGreaterThan(0);
        const cwd = await session.runCommand({ command_id: id(), program: "pwd", cwd: "/tmp" });
        expect(cwd.stdout.trim()).toBe("/tmp");
        // Relative paths are the workspace's; `..` stays in the sandbox's own tree.
        await session.writeFile({ path: "scope.txt", contents: new Uint8Array([7]) });
        expect((await sh("od -An -tu1 scope.txt")).stdout.trim()).toBe("7");
        // The system is read-only; a symlink out of the workspace reads the sandbox's own file, and writes
        // through it fail there: the host's /etc is untouched.
        const ro = await thrown(() =>
          session.writeFile({ path: `/etc/roder-scope-${token}`, contents: new Uint8Array([1]) }),
        );
        expect(RunnerError.isInstance(ro), String(ro)).toBe(true);
        const made = await sh("ln -sfn /etc scope-etc && ln -sfn /etc/hostname scope-host && echo ok");
        expect(made.stdout.trim()).toBe("ok");
        const viaLink = await session.readFile({ path: "scope-host" });
        expect(viaLink.contents).toEqual(hostname.contents);
        const w = await thrown(() =>
          session.writeFile({ path: `scope-etc/roder-scope-${token}`, contents: new Uint8Array([1]) }),
        );
        expect(RunnerError.isInstance(w), String(w)).toBe(true);
        const { existsSync } = await import("node:fs");
        expect(existsSync(`/etc/roder-scope-${token}`)).toBe(false);
        // NUL bytes are refused before anything runs.
        const nul = await thrown(() =>
          session.writeFile({ path: "a\u0000b", contents: new Uint8Array([1]) }),
        );
        expect(RunnerError.isInstance(nul)).toBe(true);
        await sh(
          `rm -f /tmp/roder-scope-${token} /tmp/roder-scope-${token}.b scope.txt scope-etc scope-host`,
        );
      });
    }

    if (options.interactive?.includes("stdin")) {
      check("a line-reading program answers lines written to its stdin; closeStdin ends cat", async () => {
        const h = await session.startCommand!({
          command_id: id(),
          program: "sh",
          args: ["-c", 'while read -r line; do echo "got:$line"; done; echo bye'],
          stdin: true,
          timeout_ms: 30_000,
        } as never);
        const seen: string[] = [];
        const reader = (async () => {
          let buf = "";
          for await (const c of h.output) {
            if (c.stream !== "stdout") continue;
            buf += new TextDecoder().decode(c.data);
            seen.push(...buf.split("\n").slice(0, -1));
            buf = buf.slice(buf.lastIndexOf("\n") + 1);
          }
        })();
        await h.write!("one\n");
        for (let i = 0; i < 100 && !seen.includes("got:one"); i++)
          await new Promise((r) => setTimeout(r, 50));
        // The first answer came before the second line was written: the program is interactive.
        expect(seen).toEqual(["got:one"]);
        await h.write!(new TextEncoder().encode("two\n"));
        await h.closeStdin!();
        const r = await h.wait();
        await reader;
        expect(r.exit_code).toBe(0);
        expect(r.stdout).toBe("got:one\ngot:two\nbye\n");
        await expect(h.write!("late\n")).rejects.toThrow();
        const cat = await session.startCommand!({ command_id: id(), program: "cat", stdin: true } as never);
        await cat.write!(new Uint8Array([0, 255, 10]));
        await cat.closeStdin!();
        const cr = await cat.wait();
        expect(cr.exit_code).toBe(0);
      });
    }

    if (options.interactive?.includes("pty")) {
      check("a PTY command sees a terminal of the asked size, and resize reaches it", async () => {
        const h = await session.startCommand!({
          command_id: id(),
          program: "sh",
          args: ["-c", "test -t 1 && echo tty; stty size; read -r go; stty size"],
          pty: { cols: 100, rows: 30 },
          timeout_ms: 30_000,
        } as never);
        let out = "";
        const reader = (async () => {
          for await (const c of h.output) out += new TextDecoder().decode(c.data);
        })();
        for (let i = 0; i < 100 && !out.includes("30 100"); i++) await new Promise((r) => setTimeout(r, 50));
        expect(out).toContain("tty");
        expect(out).toContain("30 100");
        await h.resize!(120, 40);
        await h.write!("go\n");
        const r = await h.wait();
        await reader;
        expect(r.exit_code).toBe(0);
        expect(out).toContain("40 120");
      });
    }

    check(
      "kills a command at timeout_ms and says so",
      async () => {
        const started = Date.now();
        const r = await session.runCommand({
          command_id: id(),
          program: "sh",
          args: ["-c", "echo before; sleep 30; echo after"],
          timeout_ms: 1000,
        });
        expect(Date.now() - started).toBeLessThan(20_000);
        expect(r.exit_code).toBeNull();
        expect(r.stdout).toContain("before");
        expect(r.stdout).not.toContain("after");
        expect(commandOutcome(r).timedOut).toBe(true);
      },
      60_000,
    );

    check(
      "cancels a long command",
      async () => {
        const caps = provider.capabilities();
        const cid = id();
        if (!caps.cancellation) {
          expect(await session.cancelCommand(cid)).toBe(false);
          return;
        }
        const running = session.runCommand({ command_id: cid, program: "sh", args: ["-c", "sleep 30"] });
        let cancelled = false;
        for (let i = 0; i < 100 && !cancelled; i++) {
          await new Promise((r) => setTimeout(r, 100));
          cancelled = await session.cancelCommand(cid);
        }
        expect(cancelled).toBe(true);
        const r = await running;
        expect(r.exit_code).toBeNull();
        expect(await session.cancelCommand(cid)).toBe(false);
        expect(await session.cancelCommand("never-started")).toBe(false);
      },
      60_000,
    );

    check("honours an AbortSignal", async () => {
      const ac = new AbortController();
      ac.abort();
      const e = await thrown(() =>
        session.runCommand({ command_id: id(), program: "true" }, { signal: ac.signal }),
      );
      expect(CancelledError.isInstance(e) || RunnerError.isInstance(e)).toBe(true);
    });

    check(
      "previews a port",
      async () => {
        const caps = provider.capabilities();
        if (!caps.port_preview) {
          expect(
            UnsupportedCapabilityError.isInstance(
              await thrown(() => session.exposePort({ port: 8080, label: null })),
            ),
          ).toBe(true);
          return;
        }
        const port = await freePort();
        const token = randomUUID();
        const script = `require('http').createServer((q,s)=>s.end(${JSON.stringify(token)})).listen(${port},'0.0.0.0')`;
        const cid = id();
        const server = session.startCommand
          ? await session.startCommand({ command_id: cid, program: "node", args: ["-e", script] })
          : null;
        if (!server) await sh(`nohup node -e "${script.replace(/"/g, '\\"')}" >/dev/null 2>&1 &`);
        try {
          const result = await session.exposePort({ port, label: "web" });
          expect(result.port).toBe(port);
          expect(result.url).toMatch(/^https?:\/\//);
          if ((options.portPreview ?? "reachable") === "reachable") {
            let body = "";
            for (let i = 0; i < 100 && body !== token; i++) {
              body = await fetch(result.url!)
                .then((r) => r.text())
                .catch(() => "");
              if (body !== token) await new Promise((r) => setTimeout(r, 100));
            }
            expect(body).toBe(token);
          }
        } finally {
          if (server) await server.kill();
          else await sh(`pkill -f ${port} || true`);
        }
      },
      60_000,
    );

    check(
      "streams output through startCommand when the session has it",
      async () => {
        if (!session.startCommand) return;
        const handle = await session.startCommand({
          command_id: id(),
          program: "sh",
          args: ["-c", "echo one; sleep 1; echo two >&2; sleep 1; echo three"],
        });
        const seen: string[] = [];
        let firstAt = 0;
        const started = Date.now();
        for await (const chunk of handle.output) {
          if (!firstAt) firstAt = Date.now() - started;
          seen.push(`${chunk.stream}:${new TextDecoder().decode(chunk.data)}`);
        }
        const result = await handle.wait();
        expect(result.exit_code).toBe(0);
        expect(result.stdout).toBe("one\nthree\n");
        expect(seen.join("")).toContain("stderr:two");
        // The first chunk came before the command ended (about 2 s).
        expect(firstAt).toBeLessThan(1500);
      },
      60_000,
    );

    check(
      "snapshots and restores the workspace",
      async () => {
        const caps = provider.capabilities();
        if (!caps.snapshots) {
          expect(UnsupportedCapabilityError.isInstance(await thrown(() => session.snapshot()))).toBe(true);
          return;
        }
        await session.writeFile({ path: "snap/state.txt", contents: new TextEncoder().encode("before") });
        const snap = await session.snapshot();
        expect(snap).not.toBeNull();
        expect(snap!.provider_id).toBe(provider.id);
        await session.writeFile({ path: "snap/state.txt", contents: new TextEncoder().encode("after") });
        const state: RunnerSessionState = {
          ...codecs.RunnerSessionState.decode(codecs.RunnerSessionState.encode(session.state())),
          snapshot: snap,
        };
        const other = await (await (options.createResumeProvider ?? options.createProvider)()).resumeSession(
          codecs.RunnerSessionState.decode(codecs.RunnerSessionState.encode(state)),
        );
        opened.push(other);
        expect(new TextDecoder().decode((await other.readFile({ path: "snap/state.txt" })).contents)).toBe(
          "before",
        );
        const text = JSON.stringify(snap) + codecs.RunnerSessionState.encode(other.state());
        for (const s of secrets) expect(text).not.toContain(s);
      },
      120_000,
    );

    check(
      "resumes from a persisted state in a new provider instance",
      async () => {
        await session.writeFile({ path: "resume/x.txt", contents: new TextEncoder().encode("still here") });
        const persisted = codecs.RunnerSessionState.encode(session.state());
        const fresh = await (options.createResumeProvider ?? options.createProvider)();
        const again = await fresh.resumeSession(codecs.RunnerSessionState.decode(persisted));
        expect(again.state().session_id).toBe(session.state().session_id);
        expect(new TextDecoder().decode((await again.readFile({ path: "resume/x.txt" })).contents)).toBe(
          "still here",
        );
        const r = await again.runCommand({ command_id: id(), program: "cat", args: ["resume/x.txt"] });
        expect(r.stdout).toBe("still here");
      },
      60_000,
    );

    const limitsOf = (): RunnerLimits => {
      const l = options.limits ?? provider.limits(destination);
      expect(l, `no published limits for provider '${provider.id}'`).toBeTruthy();
      return RunnerLimitsSchema.parse(l);
    };
    const text = (d: Uint8Array) => new TextDecoder().decode(d);

    check("publishes limits that agree with the session's methods", async () => {
      const limits = limitsOf();
      expect(limits.provider_id).toBe(provider.id);
      expect(RunnerLimitsSchema.parse(provider.limits()).provider_id).toBe(provider.id);
      expect(typeof session.startCommand === "function").toBe(limits.streaming === "native");
      expect(typeof session.attachCommand === "function").toBe(limits.attach !== "none");
      expect(typeof session.pause === "function").toBe(limits.pause !== "none");
      expect(limits.reattach).toBe(limits.attach === "any-client");
      expect(limits.attach === "none").toBe(limits.attach_replay === null);
      expect(provider.capabilities().cancellation).toBe(limits.cancellation !== "none");
      // A fixed scope is the one the suite was told; `destination` means the destination's config decides.
      if (limits.file_scope === "workspace" || limits.file_scope === "sandbox")
        expect(limits.file_scope).toBe(options.fileScope ?? "workspace");
    });

    check(
      "detaches from a running command and attaches to it again",
      async () => {
        const limits = limitsOf();
        if (limits.attach === "none" || !session.startCommand || !session.attachCommand) return;
        const cid = id();
        const h = await session.startCommand({
          command_id: cid,
          program: "sh",
          args: ["-c", "echo one; sleep 1; echo two; sleep 1; echo three"],
        });
        const it = h.output[Symbol.asyncIterator]();
        let first = "";
        while (!first.includes("one")) {
          const r = await it.next();
          if (r.done) break;
          first += text(r.value.data);
        }
        expect(first).toContain("one");
        await h.detach!();
        // Detached, the command goes on; wait() still answers (following it again where it must).
        const detachedResult = h.wait();
        // any-client: a new provider instance, from the persisted state, as another process would.
        const target =
          limits.attach === "any-client"
            ? await (await (options.createResumeProvider ?? options.createProvider)()).resumeSession(
                codecs.RunnerSessionState.decode(codecs.RunnerSessionState.encode(session.state())),
              )
            : session;
        const again = await target.attachCommand!(cid);
        expect(again.commandId).toBe(cid);
        let seen = "";
        for await (const chunk of again.output) seen += text(chunk.data);
        const result = await again.wait();
        expect(result.exit_code).toBe(0);
        expect(seen).toContain("three");
        if (limits.attach_replay === "retained") {
          expect(seen).toBe("one\ntwo\nthree\n");
          expect(result.stdout).toBe("one\ntwo\nthree\n");
        } else expect(seen).not.toContain("one");
        expect((await detachedResult).exit_code).toBe(0);
        const missing = await thrown(() => target.attachCommand!(`never-started-${id()}`));
        expect(CommandNotFoundError.isInstance(missing), String(missing)).toBe(true);
      },
      60_000,
    );

    check(
      "pauses, refuses calls while paused, and resumes with its files from the persisted state",
      async () => {
        const limits = limitsOf();
        if (limits.pause === "none" || !session.pause) return;
        const s = await provider.createSession(destination);
        opened.push(s);
        await s.writeFile({ path: "paused/kept.txt", contents: new TextEncoder().encode("kept") });
        await s.pause!();
        const e = await thrown(() => s.runCommand({ command_id: id(), program: "true" }));
        expect(RunnerError.isInstance(e) && e.code === "session_paused", String(e)).toBe(true);
        const resumed = await (
          await (options.createResumeProvider ?? options.createProvider)()
        ).resumeSession(codecs.RunnerSessionState.decode(codecs.RunnerSessionState.encode(s.state())));
        opened.push(resumed);
        expect(text((await resumed.readFile({ path: "paused/kept.txt" })).contents)).toBe("kept");
        const r = await resumed.runCommand({ command_id: id(), program: "cat", args: ["paused/kept.txt"] });
        expect(r.stdout).toBe("kept");
        await resumed.close();
      },
      120_000,
    );

    check(
      "aborting a running command kills it, on every path",
      async () => {
        for (const how of ["runCommand", "startCommand"] as const) {
          if (how === "startCommand" && !session.startCommand) continue;
          const marker = `late-${id()}`;
          const ac = new AbortController();
          const request = {
            command_id: id(),
            program: "sh",
            args: ["-c", `sleep 2; echo x > ${marker}`],
          };
          const started = Date.now();
          const outcome =
            how === "runCommand"
              ? session.runCommand(request, { signal: ac.signal })
              : session.startCommand!(request, { signal: ac.signal }).then((h) => h.wait());
          setTimeout(() => ac.abort(), 300);
          const settled = await outcome.then(
            (r) => ({ ok: true as const, r }),
            (e: unknown) => ({ ok: false as const, e }),
          );
          expect(Date.now() - started, `${how}: answered promptly after the abort`).toBeLessThan(1900);
          if (settled.ok) {
            expect(settled.r.exit_code, how).toBeNull();
            expect(commandOutcome(settled.r).cancelled, how).toBe(true);
          } else expect(CancelledError.isInstance(settled.e), `${how}: ${settled.e}`).toBe(true);
          // The process really died: it never gets to write its marker.
          await new Promise((r) => setTimeout(r, 2500));
          const e = await thrown(() => session.readFile({ path: marker }));
          expect(RunnerError.isInstance(e) && e.code === "not_found", `${how}: ${e}`).toBe(true);
        }
      },
      60_000,
    );

    check(
      "honours an already-aborted AbortSignal on every call, with no effect",
      async () => {
        const ac = new AbortController();
        ac.abort();
        const signal = ac.signal;
        const path = `aborted-${id()}.txt`;
        const calls: Array<[string, () => Promise<unknown>]> = [
          [
            "runCommand",
            () => session.runCommand({ command_id: id(), program: "touch", args: [path] }, { signal }),
          ],
          ["writeFile", () => session.writeFile({ path, contents: new Uint8Array([1]) }, { signal })],
          ["readFile", () => session.readFile({ path: "." }, { signal })],
          ["createSession", () => provider.createSession(destination, { signal })],
        ];
        if (provider.capabilities().snapshots) calls.push(["snapshot", () => session.snapshot({ signal })]);
        if (session.startCommand)
          calls.push([
            "startCommand",
            () => session.startCommand!({ command_id: id(), program: "touch", args: [path] }, { signal }),
          ]);
        const before = options.countLiveSessions ? await options.countLiveSessions() : 0;
        for (const [name, call] of calls) {
          const e = await thrown(call);
          expect(CancelledError.isInstance(e), `${name}: ${e}`).toBe(true);
        }
        if (options.countLiveSessions) expect(await options.countLiveSessions()).toBe(before);
        const e = await thrown(() => session.readFile({ path }));
        expect(RunnerError.isInstance(e) && e.code === "not_found", String(e)).toBe(true);
      },
      60_000,
    );

    check(
      "an aborted create leaves no sandbox behind",
      async () => {
        if (!options.countLiveSessions) return;
        const before = await options.countLiveSessions();
        for (const delay of [0, 5, 25, 100, 400]) {
          const ac = new AbortController();
          const pending = provider.createSession(destination, { signal: ac.signal });
          setTimeout(() => ac.abort(), delay);
          const r = await pending.then(
            (s) => ({ ok: true as const, s }),
            (e: unknown) => ({ ok: false as const, e }),
          );
          // Either the create won the race (then it is an ordinary session) or it failed typed and cleaned up.
          if (r.ok) await r.s.close();
          else expect(CancelledError.isInstance(r.e), `abort after ${delay} ms: ${r.e}`).toBe(true);
          expect(await options.countLiveSessions(), `abort after ${delay} ms`).toBe(before);
        }
      },
      120_000,
    );

    check(
      "reports one event per operation to an observer, with no secret or argument in it",
      async () => {
        const events: RunnerOperationEvent[] = [];
        const observed = withObserver(await options.createProvider(), (e) => events.push(e));
        const marker = `arg-marker-${randomUUID()}`;
        const s = await observed.createSession(destination);
        opened.push(s);
        await s.writeFile({ path: "observed.bin", contents: new Uint8Array(777) });
        expect((await s.readFile({ path: "observed.bin" })).contents.length).toBe(777);
        await s.runCommand({ command_id: id(), program: "echo", args: [marker], env: [["M", marker]] });
        await s.readFile({ path: `missing-${marker}` }).catch(() => {});
        await s.close();
        const ops = events.map((e) => `${e.operation}:${e.outcome}`);
        expect(ops).toEqual([
          "createSession:ok",
          "writeFile:ok",
          "readFile:ok",
          "runCommand:ok",
          "readFile:error",
          "close:ok",
        ]);
        for (const e of events) {
          expect(RunnerOperationEventSchema.parse(e)).toEqual(e);
          expect(e.provider).toBe(provider.id);
        }
        expect(events[1]!.bytes_out).toBe(777);
        expect(events[2]!.bytes_in).toBe(777);
        expect(events[4]!.error_code).toBe("not_found");
        const all = JSON.stringify(events);
        expect(all).not.toContain(marker);
        for (const secret of secrets) expect(all).not.toContain(secret);
      },
      60_000,
    );

    check(
      "its sweeper lists this owner's sessions and removes one",
      async () => {
        if (!options.sweeper) return;
        const sweeper = await options.sweeper.create();
        const owner = options.sweeper.owner;
        const s = await provider.createSession(destination);
        opened.push(s);
        const sid = s.state().session_id;
        const listed = await sweeper.listOwnedSessions({ owner });
        const mine = listed.find((o) => o.session_id === sid);
        expect(mine, `${sid} in ${JSON.stringify(listed)}`).toBeDefined();
        expect(mine!.expires_at === null || !Number.isNaN(Date.parse(mine!.expires_at))).toBe(true);
        expect(await sweeper.listOwnedSessions({ owner: `someone-else-${id()}` })).toEqual([]);
        // Nothing has expired yet: a sweep of expired sessions removes nothing; a dry run of all finds it.
        const now = await sweepExpiredSessions(sweeper, { owner, now: new Date(Date.now() - 1000) });
        expect(now.removed.filter((r) => r === sid)).toEqual([]);
        const dry = await sweepExpiredSessions(sweeper, { owner, includeUnexpired: true, dryRun: true });
        expect(dry.found.map((o) => o.session_id)).toContain(sid);
        expect(dry.removed).toEqual([]);
        await sweeper.destroySession(sid);
        expect((await sweeper.listOwnedSessions({ owner })).map((o) => o.session_id)).not.toContain(sid);
        const after = await thrown(async () => {
          const again = await (
            await (options.createResumeProvider ?? options.createProvider)()
          ).resumeSession(s.state());
          await again.runCommand({ command_id: id(), program: "true" });
        });
        expect(RunnerError.isInstance(after), String(after)).toBe(true);
      },
      120_000,
    );

    check("plans every mount kind before create, in agreement with validateDestination", async () => {
      const planMounts = options.planMounts ?? ((d: RunnerDestination) => provider.planMounts(d));
      const caps = provider.capabilities();
      const uris: Record<string, string> = {
        s3: "s3://plan-bucket/p",
        r2: "r2://plan-bucket/p",
        gcs: "gs://plan-bucket/p",
        azure_blob: "azure://acct/container/p",
        box_storage: "box://0",
      };
      for (const [kind, supported] of Object.entries(caps.mounts)) {
        if (kind === "provider_native") continue;
        const d: RunnerDestination = {
          ...destination,
          default_manifest: {
            entries: [],
            mounts: [
              {
                name: `m-${kind}`,
                path: "mnt/m",
                read_only: true,
                intent: { kind: kind as never, uri: uris[kind]!, credentials: { id: "plan-check" } },
              },
            ],
          },
        };
        const plan = planMounts(d).map((p) => MountPlanEntrySchema.parse(p));
        expect(plan, kind).toHaveLength(1);
        expect(plan[0]!.name).toBe(`m-${kind}`);
        expect(
          plan[0]!.strategy === "unsupported",
          `${kind}: plan ${plan[0]!.strategy}, capability ${supported}`,
        ).toBe(!supported);
        if (plan[0]!.strategy === "fuse-in-sandbox") expect(plan[0]!.credentials_in_sandbox).toBe(true);
        const e = await provider.validateDestination(d).then(
          () => null,
          (x: unknown) => x,
        );
        // Refused by the destination (credentials inside the sandbox not allowed): create refuses it too.
        if (plan[0]!.strategy === "refused")
          expect(RunnerError.isInstance(e) && e.code === "credentials_in_sandbox", `${kind}: ${e}`).toBe(
            true,
          );
        else if (!supported)
          expect(RunnerError.isInstance(e) && e.code === "unsupported_capability", `${kind}: ${e}`).toBe(
            true,
          );
        // Supported: it may only fail for the credential variables the plan names (not set here).
        else if (e !== null) {
          expect(
            RunnerError.isInstance(e) &&
              ["missing_secret", "invalid_secret", "missing_dependency"].includes(e.code),
            `${kind}: ${e}`,
          ).toBe(true);
          for (const secret of secrets) expect(errorText(e)).not.toContain(secret);
        }
      }
    });

    check("keeps secrets out of state() and errors", async () => {
      const state = codecs.RunnerSessionState.encode(session.state());
      for (const s of secrets) expect(state).not.toContain(s);
      const e = await thrown(() => session.readFile({ path: "does/not/exist" }));
      expect(RunnerError.isInstance(e)).toBe(true);
      for (const s of secrets) expect(errorText(e)).not.toContain(s);
    });

    check("throws UnsupportedCapabilityError for every capability it lacks", async () => {
      const caps = provider.capabilities();
      if (!caps.artifact_export) {
        await session.writeFile({ path: "artifact.txt", contents: new TextEncoder().encode("a") });
        const e = await thrown(() => session.exportArtifact({ path: "artifact.txt", recursive: false }));
        expect(UnsupportedCapabilityError.isInstance(e), String(e)).toBe(true);
      }
      for (const [kind, ok] of Object.entries(caps.mounts)) {
        if (ok) continue;
        const uri = {
          s3: "s3://bucket-x/p",
          r2: "r2://bucket-x/p",
          gcs: "gs://bucket-x/p",
          azure_blob: "azure://acct/container/p",
          box_storage: "box://0",
          provider_native: "/tmp",
        }[kind]!;
        const e = await thrown(() =>
          provider.validateDestination({
            ...destination,
            default_manifest: {
              entries: [],
              mounts: [{ name: "m", path: "mnt/m", read_only: true, intent: { kind: kind as never, uri } }],
            },
          }),
        );
        expect(
          RunnerError.isInstance(e) && ["unsupported_capability"].includes(e.code),
          `${kind}: ${e}`,
        ).toBe(true);
      }
    });

    check(
      "close is idempotent and later calls fail with a typed error",
      async () => {
        const s = await provider.createSession(destination);
        opened.push(s);
        const state = s.state();
        await s.close();
        await s.close();
        const e = await thrown(() => s.runCommand({ command_id: id(), program: "true" }));
        expect(RunnerError.isInstance(e)).toBe(true);
        const r = await thrown(async () => {
          const again = await (
            await (options.createResumeProvider ?? options.createProvider)()
          ).resumeSession(state);
          await again.runCommand({ command_id: id(), program: "true" });
        });
        expect(RunnerError.isInstance(r), String(r)).toBe(true);
      },
      60_000,
    );
  });
}
