import { randomUUID } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { arch, networkInterfaces } from "node:os";
import type {
  RemoteRunnerProvider,
  RemoteRunnerSession,
  RunnerCommandResult,
  RunnerDestination,
} from "@roder/runner-contract";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

type MaybePromise<T> = T | Promise<T>;

export interface SandboxConformanceOptions {
  /** Shown in the describe block. */
  name: string;
  createProvider: () => MaybePromise<RemoteRunnerProvider>;
  destination: RunnerDestination | (() => MaybePromise<RunnerDestination>);
  /**
   * The destination is an isolated sandbox (its own namespaces or machine): the "escape" group runs, and two
   * sessions must not see each other's /tmp or processes.
   */
  isolated: boolean;
  /** The network the destination gives its sandbox (default `host` when not isolated, else `egress`). */
  network?: "none" | "egress" | "host";
  /** `reachable`: exposePort's URL is fetched from the host; `none`: the provider has no previews here. */
  portPreview?: "reachable" | "url-only" | "none";
  /**
   * The sandbox runs on this machine (the local runner, or a stand-in that runs its machines on it): the suite
   * then also checks from the host that nothing of a closed session runs.
   */
  hostVisible?: boolean;
  setup?: () => Promise<void>;
  teardown?: () => Promise<void>;
  /** Names of checks to skip (reported as skipped), for a backend that documents why. */
  skip?: string[];
}

/** Pids of this host's processes whose command line holds `token`. */
function hostProcessesWith(token: string): number[] {
  const out: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (readFileSync(`/proc/${name}/cmdline`).includes(token)) out.push(Number(name));
    } catch {}
  }
  return out;
}

async function waitFor(pred: () => MaybePromise<boolean>, ms: number): Promise<boolean> {
  const until = Date.now() + ms;
  for (;;) {
    if (await pred()) return true;
    if (Date.now() > until) return false;
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * A shell line that counts the sandbox's processes whose command line holds `token`; the pattern is written
 * `[x]yz…` so that neither grep nor the shell running it counts itself.
 */
const countProcesses = (token: string) =>
  `for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline 2>/dev/null; echo; done | grep -c -- '[${token[0]}]${token.slice(1)}' || true`;

/** A TCP server on the host that answers every connection with `token` and closes. */
async function tokenServer(host: string, token: string): Promise<{ port: number; close(): Promise<void> }> {
  const srv: Server = createServer((sock) => {
    sock.on("error", () => {});
    sock.end(token);
  });
  await new Promise<void>((resolve, reject) => {
    srv.once("error", reject);
    srv.listen(0, host, () => resolve());
  });
  const { port } = srv.address() as { port: number };
  return { port, close: () => new Promise((r) => srv.close(() => r())) };
}

/** A node one-liner run in the sandbox: connects to host:port, prints what it read or `ERR <code>`. */
const connectScript = (host: string, port: number) =>
  `const s=require('net').connect(${port},${JSON.stringify(host)});let b='';s.setTimeout(3000,()=>{console.log('ERR timeout');process.exit(0)});s.on('data',d=>b+=d);s.on('end',()=>{console.log(b);process.exit(0)});s.on('error',e=>{console.log('ERR '+e.code);process.exit(0)})`;

/** A node HTTP server on 0.0.0.0:port answering `token`; the token also names it in the process list. */
const serverScript = (port: number, token: string) =>
  `require('http').createServer((q,s)=>s.end(${JSON.stringify(token)})).listen(${port},'0.0.0.0')`;

/**
 * The sandbox model, checked against any provider: a session is one sandbox for its whole life ("sandbox
 * lifetime"), and an isolated one holds against the commands it runs ("escape"), tried from inside as an
 * escape would be.
 */
export function describeSandboxConformance(options: SandboxConformanceOptions): void {
  const skip = new Set(options.skip ?? []);
  const check = (name: string, fn: () => Promise<void>, timeout = 60_000) =>
    skip.has(name) ? it.skip(name, fn) : it(name, fn, timeout);
  const network = options.network ?? (options.isolated ? "egress" : "host");
  const preview = options.portPreview ?? "reachable";

  describe(`sandbox conformance: ${options.name}`, () => {
    let provider: RemoteRunnerProvider;
    let destination: RunnerDestination;
    let session: RemoteRunnerSession;
    const opened: RemoteRunnerSession[] = [];
    let n = 0;
    const id = () => `s${++n}-${randomUUID().slice(0, 8)}`;
    const shIn = (
      s: RemoteRunnerSession,
      script: string,
      timeout_ms = 30_000,
    ): Promise<RunnerCommandResult> =>
      s.runCommand({ command_id: id(), program: "sh", args: ["-c", script], timeout_ms });
    const sh = (script: string) => shIn(session, script);
    const node = (s: RemoteRunnerSession, script: string) =>
      s.runCommand({ command_id: id(), program: "node", args: ["-e", script], timeout_ms: 30_000 });
    const open = async () => {
      const s = await provider.createSession(destination);
      opened.push(s);
      return s;
    };
    // A port for a server in the sandbox: on the host's network it must be free there too.
    const sandboxPort = async () => {
      const t = await tokenServer("127.0.0.1", "x");
      await t.close();
      return t.port;
    };

    beforeAll(async () => {
      await options.setup?.();
      provider = await options.createProvider();
      destination =
        typeof options.destination === "function" ? await options.destination() : options.destination;
      session = await open();
    }, 120_000);

    afterAll(async () => {
      for (const s of opened) await s.close().catch(() => {});
      await options.teardown?.();
    }, 120_000);

    describe("sandbox lifetime", () => {
      check("a file in /tmp is there for the next command", async () => {
        const token = randomUUID();
        const file = `/tmp/roder-lifetime-${token}`;
        expect((await sh(`printf %s ${token} > ${file}`)).exit_code).toBe(0);
        const read = await sh(`cat ${file}; rm -f ${file}`);
        expect(read.exit_code).toBe(0);
        expect(read.stdout).toBe(token);
      });

      check("a background server started by one command answers later commands and the host", async () => {
        const token = randomUUID();
        const port = await sandboxPort();
        const started = await sh(
          `nohup node -e "${serverScript(port, token).replace(/"/g, '\\"')}" >/dev/null 2>&1 &`,
        );
        // The command returns while its server goes on.
        expect(started.exit_code).toBe(0);
        let body = "";
        const ok = await waitFor(async () => {
          const r = await node(
            session,
            `fetch('http://127.0.0.1:${port}/').then(r=>r.text()).then(t=>console.log(t),()=>console.log('ERR'))`,
          );
          body = r.stdout.trim();
          return body === token;
        }, 15_000);
        expect(body, "a later command reaches the server of an earlier one").toBe(token);
        expect(ok).toBe(true);
        if (preview === "none") return;
        const { url } = await session.exposePort({ port, label: "lifetime" });
        expect(url).toMatch(/^https?:\/\//);
        if (preview !== "reachable") return;
        let fromHost = "";
        await waitFor(async () => {
          fromHost = await fetch(url!)
            .then((r) => r.text())
            .catch(() => "");
          return fromHost === token;
        }, 15_000);
        expect(fromHost, "the host reaches the server through exposePort's URL").toBe(token);
      });

      check("after close nothing the session started runs (nohup, setsid, double fork)", async () => {
        const s = await open();
        const token = randomUUID();
        const port = await sandboxPort();
        const idle = `setInterval(()=>{},1000)`;
        const r = await shIn(
          s,
          [
            `nohup node -e "${idle}" ${token}-a >/dev/null 2>&1 &`,
            `setsid node -e "${idle}" ${token}-b >/dev/null 2>&1 < /dev/null &`,
            `(node -e "${idle}" ${token}-c >/dev/null 2>&1 &) &`,
            `nohup node -e "${serverScript(port, token).replace(/"/g, '\\"')}" ${token}-d >/dev/null 2>&1 &`,
            "true",
          ].join("\n"),
        );
        expect(r.exit_code).toBe(0);
        // Inside, all four run after their command ended.
        const count = countProcesses(`${token}-`);
        let seen = 0;
        await waitFor(async () => {
          seen = Number((await shIn(s, count)).stdout.trim());
          return seen >= 4;
        }, 15_000);
        expect(seen, "the background processes outlive their command").toBeGreaterThanOrEqual(4);
        let url: string | null = null;
        if (preview === "reachable") {
          url = (await s.exposePort({ port, label: "close" })).url;
          expect(
            await waitFor(
              () =>
                fetch(url!).then(
                  (x) => x.ok,
                  () => false,
                ),
              15_000,
            ),
          ).toBe(true);
        }
        await s.close();
        if (options.hostVisible)
          expect(
            await waitFor(() => hostProcessesWith(token).length === 0, 10_000),
            "no process of the closed session is left on the host",
          ).toBe(true);
        if (url) {
          const after = await fetch(url, { signal: AbortSignal.timeout(3000) }).then(
            (x) => x.text(),
            () => null,
          );
          expect(after, "the closed session's server no longer answers").not.toBe(token);
        }
      });

      if (options.isolated)
        check("isolated sessions see neither each other's /tmp nor processes", async () => {
          const other = await open();
          const token = randomUUID();
          const file = `/tmp/roder-other-${randomUUID()}`;
          // The token is never written whole in a command line of the session that counts.
          await sh(`printf %s ${token} > ${file}`);
          await sh(`nohup node -e "setInterval(()=>{},1000)" ${token} >/dev/null 2>&1 &`);
          expect((await sh(countProcesses(token))).stdout.trim(), "the session sees its own process").toBe(
            "1",
          );
          const r = await shIn(other, `cat ${file} 2>/dev/null; ${countProcesses(token)}`);
          expect(r.stdout.trim()).toBe("0");
          await other.close();
        });
    });

    if (!options.isolated) return;

    describe("escape", () => {
      check("a command holds no capability and cannot gain one", async () => {
        const r = await sh("grep -E '^(CapPrm|CapEff|CapAmb|NoNewPrivs)' /proc/self/status");
        expect(r.stdout).toMatch(/CapPrm:\s+0000000000000000/);
        expect(r.stdout).toMatch(/CapEff:\s+0000000000000000/);
        expect(r.stdout).toMatch(/CapAmb:\s+0000000000000000/);
      });

      check("the system is read-only and cannot be remounted", async () => {
        const token = randomUUID();
        const r = await sh(
          [
            `touch /usr/roder-escape-${token} 2>/dev/null; echo usr=$?`,
            `touch /etc/roder-escape-${token} 2>/dev/null; echo etc=$?`,
            `mount -o remount,bind,rw /usr 2>/dev/null; echo remount=$?`,
            `unshare -Urm true 2>/dev/null; echo userns=$?`,
          ].join("; "),
        );
        expect(r.stdout).not.toMatch(/usr=0/);
        expect(r.stdout).not.toMatch(/etc=0/);
        expect(r.stdout).not.toMatch(/remount=0/);
        if (options.hostVisible) {
          // On this machine's runner, no user namespace can be made inside (it would give capabilities there).
          expect(r.stdout).not.toMatch(/userns=0/);
          expect(() => readFileSync(`/usr/roder-escape-${token}`)).toThrow();
          expect(() => readFileSync(`/etc/roder-escape-${token}`)).toThrow();
        }
      });

      check("the host's secrets are not readable (/etc/shadow)", async () => {
        const r = await sh("cat /etc/shadow 2>/dev/null | head -c 200");
        expect(r.stdout).not.toMatch(/^root:/m);
      });

      if (arch() === "x64")
        check("open_by_handle_at is refused (no reaching files by handle)", async () => {
          // name_to_handle_at(AT_FDCWD, "/", …) then open_by_handle_at(AT_FDCWD, handle, O_RDONLY): the escape of
          // "shocker"; it needs CAP_DAC_READ_SEARCH of the host.
          const perl = [
            'my $h = pack("LL", 128, 0) . ("\\0" x 128); my $m = pack("L", 0);',
            'my $r = syscall(303, -100, "/", $h, $m, 0);',
            'if ($r != 0) { print "name_to_handle_at:$!\\n"; exit 0 }',
            "my $fd = syscall(304, -100, $h, 0);",
            'print $fd >= 0 ? "OPENED\\n" : "open_by_handle_at:$!\\n";',
          ].join(" ");
          const r = await session.runCommand({
            command_id: id(),
            program: "perl",
            args: ["-e", perl],
            timeout_ms: 30_000,
          });
          if (r.exit_code === 127) return; // no perl in this sandbox's image
          expect(r.stdout).not.toContain("OPENED");
        });

      check("host processes are invisible", async () => {
        const token = randomUUID();
        const { spawn } = await import("node:child_process");
        const host = spawn(process.execPath, ["-e", "setTimeout(()=>{},60000)", token], { stdio: "ignore" });
        try {
          await waitFor(() => hostProcessesWith(token).length > 0, 5000);
          // The same count sees the session's own processes (it can fail), and none of the host's.
          const own = randomUUID();
          const seen = await sh(
            `T=${own.slice(0, 4)}; T="\${T}${own.slice(4)}"; sh -c "sleep 30; true" "$T" & sleep 0.2; ${countProcesses(own)}; kill $!`,
          );
          expect(seen.stdout.trim()).toBe("1");
          const r = await sh(countProcesses(token));
          expect(r.stdout.trim()).toBe("0");
        } finally {
          host.kill("SIGKILL");
        }
      });

      if (network !== "host") {
        check("the host's loopback is unreachable", async () => {
          const token = randomUUID();
          const srv = await tokenServer("127.0.0.1", token);
          try {
            for (const host of ["127.0.0.1", "10.0.2.2"]) {
              const r = await node(session, connectScript(host, srv.port));
              expect(r.stdout, `${host}:${srv.port} from the sandbox`).not.toContain(token);
            }
          } finally {
            await srv.close();
          }
        });

        check("link-local (cloud metadata) addresses are unreachable", async () => {
          const r = await node(session, connectScript("169.254.169.254", 80));
          expect(r.stdout).toMatch(/^ERR /);
        });

        const outside = Object.values(networkInterfaces())
          .flat()
          .find((a) => a && a.family === "IPv4" && !a.internal)?.address;
        if (outside)
          check(
            network === "egress"
              ? "outbound traffic leaves the sandbox (egress)"
              : "no traffic leaves the sandbox (none)",
            async () => {
              const token = randomUUID();
              const srv = await tokenServer(outside, token);
              try {
                const r = await node(session, connectScript(outside, srv.port));
                if (network === "egress") expect(r.stdout.trim()).toBe(token);
                else expect(r.stdout).toMatch(/^ERR /);
              } finally {
                await srv.close();
              }
            },
          );
      }
    });
  });
}
