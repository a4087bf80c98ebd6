import { type ChildProcess, execFileSync, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { type S3Emulator, startS3Emulator } from "@roder/runner-testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const root = resolve(import.meta.dirname, "../../..");
const bin = join(root, "packages/cli/dist/bin.js");
const work = mkdtempSync(join(tmpdir(), "roder-cli-"));

function cli(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [bin, ...args], {
    cwd: work,
    encoding: "buffer",
    env: { ...process.env, ...env },
    timeout: 60_000,
  });
  return { code: r.status, stdout: r.stdout.toString(), stderr: r.stderr.toString(), raw: r.stdout };
}

let s3: S3Emulator | undefined;
/** Children started by a test; any still running when the file ends (a failed assertion) are killed. */
const spawned: ChildProcess[] = [];

beforeAll(() => {
  // The tests run the built binary, as a user would. A failed build fails every test (execFileSync throws).
  execFileSync("npx", ["turbo", "run", "build", "--filter=@roder/runner-cli..."], {
    cwd: root,
    stdio: "ignore",
  });
}, 300_000);

afterAll(async () => {
  for (const c of spawned) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  await s3?.stop();
});

describe("roder-runner (built binary)", () => {
  it("prints help and version, and a usage error exits 2", () => {
    const help = cli(["--help"]);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain("exec --destination D -- PROGRAM ARGS");
    expect(cli(["exec", "--help"]).stdout).toContain("--timeout MS");
    expect(cli(["--version"]).stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
    for (const cmd of ["providers", "exec", "cp", "export", "snapshot", "close", "serve"]) {
      const h = cli([cmd, "--help"]);
      expect([h.code, h.stdout.startsWith(`Usage: roder-runner ${cmd}`)], cmd).toEqual([0, true]);
    }
    const usage = (args: string[]) => {
      const r = cli(args);
      expect(r.code, args.join(" ")).toBe(2);
      expect(r.stderr, args.join(" ")).toMatch(/^roder-runner: error: [^\n]+\n(hint: [^\n]+\n)?$/);
    };
    usage(["exec", "-d", "local"]);
    usage(["exec", "-d", "local", "--timeout", "soon", "--", "true"]);
    usage(["exec", "-d", "local", "--env", "NOEQUALS", "--", "true"]);
    usage(["exec", "--bogus", "--", "true"]);
    usage(["cp", "-d", "local", "a", "b"]);
    usage(["serve", "--port", "99999"]);
    usage(["serve", "--session-ttl", "soon"]);
    usage(["serve", "--session-ttl", "-1"]);
    usage(["serve", "--isolation", "docker"]);
    usage(["serve", "--max-output-bytes", "lots"]);
    usage(["serve", "--max-sessions", "0"]);
    const unknownProvider = cli(["serve", "--provider", "nope"], {
      RODER_RUNNER_SERVER_TOKEN: "t".repeat(24),
    });
    expect(unknownProvider.code).toBe(3);
    const bad = cli(["frobnicate"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toBe(
      "roder-runner: error: unknown command 'frobnicate'\nhint: run 'roder-runner --help' for the commands\n",
    );
  });

  it("lists providers as JSON with capabilities and setup hints naming variables only", () => {
    const r = cli(["providers", "--json"], { E2B_API_KEY: "", FLY_API_TOKEN: "" });
    expect(r.code).toBe(0);
    const list = JSON.parse(r.stdout) as Array<{
      id: string;
      capabilities: { command_exec: boolean };
      setup_hint: string | null;
    }>;
    expect(list.map((p) => p.id)).toEqual(["unix-local", "http", "fly", "e2b"]);
    expect(list[0]!.capabilities.command_exec).toBe(true);
    expect(list.find((p) => p.id === "e2b")!.setup_hint).toContain("E2B_API_KEY");
    const table = cli(["providers"]);
    expect(table.stdout).toMatch(/^PROVIDER\s+CAPABILITIES\n/);
  });

  it("exec streams output, passes stderr and exits with the command's code", () => {
    const r = cli([
      "exec",
      "-d",
      "local",
      "--env",
      "NAME=world",
      "--",
      "sh",
      "-c",
      'echo "hi $NAME"; echo warn >&2; exit 3',
    ]);
    expect(r.code).toBe(3);
    expect(r.stdout).toBe("hi world\n");
    expect(r.stderr).toBe("warn\n");
  });

  it("exec --timeout kills the command and exits 124", () => {
    const started = Date.now();
    const r = cli(["exec", "-d", "local", "--timeout", "500", "--", "sleep", "30"]);
    expect(r.code).toBe(124);
    expect(Date.now() - started).toBeLessThan(20_000);
    expect(r.stderr).toContain("timed out after 500 ms");
  });

  it("SIGTERM to exec kills the remote command and exits 137", async () => {
    const child = spawn(
      process.execPath,
      [bin, "exec", "-d", "local", "--", "sh", "-c", "echo started; sleep 30"],
      {
        cwd: work,
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    spawned.push(child);
    await new Promise<void>((res, rej) => {
      child.stdout!.on("data", (b) => String(b).includes("started") && res());
      child.on("exit", () => rej(new Error("exec exited early")));
    });
    const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
    child.kill("SIGTERM");
    expect(await exited).toBe(137);
  });

  it("--keep leaves the session up; --session resumes it; cp moves binary bytes both ways; close ends it", () => {
    const state = join(work, "state.json");
    const first = cli([
      "exec",
      "-d",
      "local",
      "--keep",
      "--state-out",
      state,
      "--",
      "sh",
      "-c",
      "echo kept > note.txt",
    ]);
    expect(first.code).toBe(0);
    const bytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    writeFileSync(join(work, "in.bin"), bytes);
    expect(cli(["cp", "--session", state, "in.bin", "runner:data/in.bin"]).code).toBe(0);
    expect(cli(["cp", "--session", state, "runner:data/in.bin", "out.bin"]).code).toBe(0);
    expect(readFileSync(join(work, "out.bin")).equals(bytes)).toBe(true);
    const fromStdin = spawnSync(process.execPath, [bin, "cp", "-s", state, "-", "runner:data/stdin.bin"], {
      cwd: work,
      input: bytes,
    });
    expect(fromStdin.status).toBe(0);
    expect(cli(["cp", "-s", state, "runner:data/stdin.bin", "-"]).raw.equals(bytes)).toBe(true);
    const again = cli(["exec", "--session", state, "--", "cat", "note.txt"]);
    expect(again.stdout).toBe("kept\n");
    const snap = cli(["snapshot", "--session", state]);
    expect(JSON.parse(snap.stdout).provider_id).toBe("unix-local");
    expect(cli(["close", "--session", state]).code).toBe(0);
    const after = cli(["exec", "--session", state, "--", "true"]);
    expect(after.code).toBe(4);
    expect(after.stderr).toMatch(/^roder-runner: error: .*closed or unknown/);
  });

  it("refuses a bad destination file with exit 3 and one line plus a hint", () => {
    writeFileSync(
      join(work, "bad.json"),
      JSON.stringify({ id: "x", provider_id: "unix-local", config: { isolation: "docker" } }),
    );
    const r = cli(["exec", "-d", "bad.json", "--", "true"]);
    expect(r.code).toBe(3);
    expect(r.stderr.split("\n")[0]).toMatch(/^roder-runner: error: invalid destination config/);
    writeFileSync(join(work, "bad.toml"), 'id = "x"\nprovider_id = 3\n');
    expect(cli(["exec", "-d", "bad.toml", "--", "true"]).code).toBe(3);
    writeFileSync(
      join(work, "dest.toml"),
      'id = "t"\nprovider_id = "unix-local"\n[config]\nisolation = "none"\n',
    );
    expect(cli(["exec", "-d", "dest.toml", "--", "echo", "toml"]).stdout).toBe("toml\n");
    expect(cli(["exec", "-d", "missing.json", "--", "true"]).code).toBe(3);
  });

  it("--state-out - prints the state on stdout and --session - reads it from stdin", () => {
    const first = cli([
      "exec",
      "-d",
      "local",
      "--keep",
      "--state-out",
      "-",
      "--",
      "sh",
      "-c",
      "echo piped > p.txt",
    ]);
    expect(first.code).toBe(0);
    const state = JSON.parse(first.stdout) as { provider_id: string; session_id: string };
    expect(state.provider_id).toBe("unix-local");
    const again = spawnSync(process.execPath, [bin, "exec", "--session", "-", "--", "cat", "p.txt"], {
      cwd: work,
      input: first.stdout,
      encoding: "utf8",
    });
    expect(again.stdout).toBe("piped\n");
    const closed = spawnSync(process.execPath, [bin, "close", "--session", "-"], {
      input: first.stdout,
      encoding: "utf8",
    });
    expect(closed.status).toBe(0);
  });

  it("a provider that is not set up is a configuration error naming the variable, never a value", () => {
    const r = cli(["exec", "-d", join(root, "packages/cli/examples/destination.e2b.toml"), "--", "true"], {
      E2B_API_KEY: "",
    });
    expect(r.code).toBe(3);
    const lines = r.stderr.trimEnd().split("\n");
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^roder-runner: error: .*E2B_API_KEY/);
    expect(lines[1]).toMatch(/^hint: .*E2B_API_KEY/);
  });

  it("export uploads a runner file to the destination's bucket and prints the result, quiet when piped", async () => {
    s3 = await startS3Emulator({ buckets: ["outputs"] });
    const dest = join(work, "export.json");
    writeFileSync(
      dest,
      JSON.stringify({
        id: "exp",
        provider_id: "unix-local",
        config: {
          artifacts: { uri: "s3://outputs/cli", credentials: { id: "data" }, endpoint: s3.endpoint },
        },
        default_manifest: { entries: [], mounts: [] },
      }),
    );
    const env = {
      RODER_SECRET_DATA_ACCESS_KEY_ID: "S3RVER",
      RODER_SECRET_DATA_SECRET_ACCESS_KEY: "S3RVER-secret-canary",
    };
    const state = join(work, "exp-state.json");
    const bytes = Buffer.from(Array.from({ length: 3000 }, (_, i) => (i * 7) % 256));
    writeFileSync(join(work, "art.bin"), bytes);
    expect(cli(["exec", "-d", dest, "--keep", "--state-out", state, "--", "true"], env).code).toBe(0);
    expect(cli(["cp", "-s", state, "art.bin", "runner:out/art.bin"], env).code).toBe(0);
    const r = cli(["export", "-s", state, "out/art.bin"], env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe("");
    const result = JSON.parse(r.stdout) as { artifact_id: string; url: string; metadata: { size: number } };
    expect(result.artifact_id).toMatch(/^s3:\/\/outputs\/cli\/.+\/art\.bin$/);
    expect(result.metadata.size).toBe(3000);
    expect(Buffer.from(await (await fetch(result.url)).arrayBuffer()).equals(bytes)).toBe(true);
    expect(r.stdout).not.toContain("S3RVER-secret-canary");
    // On a terminal (script(1) gives it one) the bytes and the rate are shown.
    const tty = spawnSync(
      "script",
      ["-qec", `${process.execPath} ${bin} export -s ${state} out/art.bin`, "/dev/null"],
      { cwd: work, encoding: "utf8", env: { ...process.env, ...env }, timeout: 60_000 },
    );
    expect(tty.status, tty.stdout).toBe(0);
    expect(tty.stdout).toMatch(/exported out\/art\.bin: 2\.9 KiB \(3000 bytes\) in [\d.]+ s, [\d.]+ \w+\/s/);
    // While it runs: the phase, then bytes of the total with a percent (from the export's progress events).
    expect(tty.stdout).toContain("preparing out/art.bin");
    expect(tty.stdout).toMatch(/export out\/art\.bin {2}[\d.]+ \w+ \/ 2\.9 KiB {2}\d+%/);
    const dir = cli(["export", "-s", state, "out", "--recursive"], env);
    expect(JSON.parse(dir.stdout).artifact_id).toMatch(/out\.tar\.gz$/);
    const noCreds = cli(["export", "-s", state, "out/art.bin"], { RODER_SECRET_DATA_ACCESS_KEY_ID: "" });
    expect(noCreds.code).toBe(3);
    expect(noCreds.stderr).toContain("RODER_SECRET_DATA_ACCESS_KEY_ID");
    expect(cli(["close", "-s", state]).code).toBe(0);
  }, 60_000);

  it("serve answers the HTTP protocol and stops on SIGTERM", async () => {
    const token = "cli-serve-token-123456";
    const child: ChildProcess = spawn(
      process.execPath,
      [bin, "serve", "--port", "0", "--session-ttl", "3600"],
      {
        env: { ...process.env, RODER_RUNNER_SERVER_TOKEN: token },
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    spawned.push(child);
    const url = await new Promise<string>((res, rej) => {
      let out = "";
      child.stdout!.on("data", (b) => {
        out += b;
        const m = /on (http:\/\/\S+)/.exec(out);
        if (m) res(m[1]!);
      });
      child.on("exit", () => rej(new Error(`serve exited: ${out}`)));
    });
    const created = await fetch(`${url}/sessions`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}` },
      body: '{"destination_id":"d"}',
    }).then((r) => r.json() as Promise<{ session_id: string }>);
    const run = await fetch(`${url}/sessions/${created.session_id}/commands`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}` },
      body: '{"command_id":"c","program":"echo","args":["served"]}',
    }).then((r) => r.json() as Promise<{ stdout: string }>);
    expect(run.stdout).toBe("served\n");
    // The CLI itself as a client: the http provider (createHttpRunnerProvider) against the served runner.
    writeFileSync(
      join(work, "http.json"),
      JSON.stringify({
        id: "h",
        provider_id: "http",
        config: { base_url: url },
        default_manifest: { entries: [], mounts: [] },
      }),
    );
    const viaHttp = cli(
      ["exec", "-d", "http.json", "--", "sh", "-c", "echo through-http; echo e >&2; exit 5"],
      {
        RODER_RUNNER_HTTP_TOKEN: token,
      },
    );
    expect([viaHttp.code, viaHttp.stdout, viaHttp.stderr]).toEqual([5, "through-http\n", "e\n"]);
    const noClientToken = cli(["exec", "-d", "http.json", "--", "true"], { RODER_RUNNER_HTTP_TOKEN: "" });
    expect(noClientToken.code).toBe(3);
    expect(noClientToken.stderr).toMatch(/^roder-runner: error: .*RODER_RUNNER_HTTP_TOKEN\nhint: /);
    const wrongToken = cli(["exec", "-d", "http.json", "--", "true"], {
      RODER_RUNNER_HTTP_TOKEN: "wrong-token-000",
    });
    expect(wrongToken.code).toBe(4);
    expect(wrongToken.stderr).not.toContain("wrong-token-000");
    const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
    child.kill("SIGTERM");
    expect(await exited).toBe(0);
    const noToken = cli(["serve"], { RODER_RUNNER_SERVER_TOKEN: "" });
    expect(noToken.code).toBe(3);
    expect(noToken.stderr).toContain("RODER_RUNNER_SERVER_TOKEN");
  });
});
