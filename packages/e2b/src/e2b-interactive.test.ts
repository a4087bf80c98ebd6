import { type RunnerCommandHandle, RunnerError } from "@roder/runner-contract";
import { createLocalProvider } from "@roder/runner-local";
import { type E2bStandIn, startE2bStandIn } from "@roder/runner-testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createE2bProvider } from "./e2b-provider.js";
import type { E2bSession } from "./e2b-session.js";

// stdin and terminals through the SDK's own calls (commands.sendStdin / closeStdin, pty.create / sendInput /
// resize), against the stand-in's envd (its processes run for real in the local runner's sandbox).
let standIn: E2bStandIn;
let session: E2bSession;
const provider = () =>
  createE2bProvider({
    apiUrl: standIn.apiUrl,
    sandboxUrl: standIn.sandboxUrl,
    domain: standIn.domain,
    env: { E2B_API_KEY: standIn.apiKey },
  });

beforeAll(async () => {
  standIn = await startE2bStandIn({ backend: createLocalProvider() });
  session = await provider().createSession({ config: { template: "base" } });
}, 60_000);
afterAll(async () => {
  await session?.close();
  await standIn?.stop();
});

let n = 0;
const id = () => `i${++n}`;
const rpcs = (name: string) => standIn.requests.filter((r) => r.path === `/process.Process/${name}`).length;

/** Collects a handle's output as text; `until(text)` waits (bounded) for it to appear. */
function collect(h: RunnerCommandHandle) {
  let text = "";
  const done = (async () => {
    for await (const c of h.output) text += new TextDecoder().decode(c.data);
  })();
  return {
    text: () => text,
    done,
    async until(needle: string) {
      for (let i = 0; i < 200 && !text.includes(needle); i++) await new Promise((r) => setTimeout(r, 50));
      expect(text).toContain(needle);
    },
  };
}

async function caught(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  throw new Error("expected a failure");
}

describe("e2b: commands on a terminal (pty.create)", () => {
  it("the output is the program's alone (no shell prompt or echo), argv arrives byte for byte", async () => {
    const inputs = rpcs("SendInput");
    const arg = `a b $HOME 'q' "d" \\ ;|&`;
    const h = await session.startCommand({
      command_id: id(),
      program: "printf",
      args: ["[%s]", arg],
      pty: { cols: 80, rows: 24 },
      timeout_ms: 30_000,
    });
    const out = collect(h);
    const r = await h.wait();
    await out.done;
    expect(r.exit_code).toBe(0);
    expect(r.stdout).toBe(`[${arg}]`);
    expect(out.text()).toBe(r.stdout);
    expect(r.stderr).toBe("");
    // The argv was typed into E2B's PTY shell: one SendInput.
    expect(rpcs("SendInput")).toBe(inputs + 1);
  });

  it("a long argv (past a terminal line's 4095 bytes) arrives whole; the launch leaves nothing in the env", async () => {
    const big = "x".repeat(50_000);
    const h = await session.startCommand({
      command_id: id(),
      program: "sh",
      args: [
        "-c",
        'printf "%s|" "${#1}"; env | grep -c -e RODER_PTY -e __roder -e RODER_ENV_ || true',
        "sh",
        big,
      ],
      pty: { cols: 80, rows: 24 },
      timeout_ms: 30_000,
    });
    const r = await h.wait();
    expect(r.exit_code).toBe(0);
    expect(r.stdout).toBe("50000|0\r\n");
  });

  it("gives the program's exit status, and a program that cannot run ends with 127 and says why", async () => {
    const three = await session.startCommand({
      command_id: id(),
      program: "sh",
      args: ["-c", "test -t 0 && test -t 2 && exit 3"],
      pty: { cols: 80, rows: 24 },
    });
    expect((await three.wait()).exit_code).toBe(3);
    const missing = await session.startCommand({
      command_id: id(),
      program: "roder-no-such-program",
      pty: { cols: 80, rows: 24 },
    });
    const r = await missing.wait();
    expect(r.exit_code).toBe(127);
    expect(r.stdout).toContain("roder-no-such-program");
    expect(r.stdout).toMatch(/not found/);
  });

  it("closeStdin sends end-of-file (Ctrl+D): cat ends; resize reaches the program", async () => {
    const updates = rpcs("Update");
    const h = await session.startCommand({
      command_id: id(),
      program: "sh",
      args: ["-c", "stty size; cat; stty size"],
      pty: { cols: 70, rows: 20 },
      timeout_ms: 30_000,
    });
    const out = collect(h);
    await out.until("20 70");
    await h.resize!(91, 33);
    expect(rpcs("Update")).toBe(updates + 1);
    await h.write!("typed\n");
    await out.until("typed");
    await h.closeStdin!();
    const r = await h.wait();
    await out.done;
    expect(r.exit_code).toBe(0);
    expect(r.stdout).toContain("33 91");
    // After the end, input is refused with a typed error.
    const late = await caught(h.write!("x"));
    expect(RunnerError.isInstance(late) && late.code).toBe("stdin_closed");
  });

  it("a terminal size that is not whole numbers 1..65535 is refused before anything runs", async () => {
    const starts = rpcs("Start");
    for (const pty of [
      { cols: 0, rows: 10 },
      { cols: 80.5, rows: 10 },
      { cols: 80, rows: 70000 },
    ]) {
      const e = await caught(session.startCommand({ command_id: id(), program: "true", pty }));
      expect(RunnerError.isInstance(e) && e.code, String(e)).toBe("invalid_request");
    }
    expect(rpcs("Start")).toBe(starts);
  });
});

describe("e2b: stdin (commands.sendStdin / closeStdin)", () => {
  it("bytes arrive as written; closeStdin is envd's CloseStdin; later writes are stdin_closed", async () => {
    const closes = rpcs("CloseStdin");
    const h = await session.startCommand({
      command_id: id(),
      program: "od",
      args: ["-An", "-tx1"],
      stdin: true,
      timeout_ms: 30_000,
    });
    await h.write!(new Uint8Array([0, 255, 10]));
    await h.write!("é");
    await h.closeStdin!();
    expect(rpcs("CloseStdin")).toBe(closes + 1);
    await h.closeStdin!(); // idempotent, nothing sent
    expect(rpcs("CloseStdin")).toBe(closes + 1);
    const closed = await caught(h.write!("more"));
    expect(RunnerError.isInstance(closed) && closed.code).toBe("stdin_closed");
    const r = await h.wait();
    expect(r.exit_code).toBe(0);
    expect(r.stdout.trim().split(/\s+/)).toEqual(["00", "ff", "0a", "c3", "a9"]);
  });

  it("a command started without stdin reads end-of-file and its handle has no write", async () => {
    const h = await session.startCommand({ command_id: id(), program: "cat", timeout_ms: 30_000 });
    expect(h.write).toBeUndefined();
    expect((await h.wait()).exit_code).toBe(0);
  });
});

describe("e2b: input through an attached handle (another client)", () => {
  it("writes to a stdin command and to a terminal found again by id, and resizes the terminal", async () => {
    const other = await provider().resumeSession(session.state());
    const piped = await session.startCommand({
      command_id: "att-stdin",
      program: "sh",
      args: ["-c", 'read -r line; echo "got:$line"'],
      stdin: true,
      timeout_ms: 30_000,
    });
    const a = await other.attachCommand("att-stdin");
    await a.write!("hello\n");
    const r = await a.wait();
    expect(r.exit_code).toBe(0);
    expect((await piped.wait()).stdout).toBe("got:hello\n");

    const term = await session.startCommand({
      command_id: "att-pty",
      program: "sh",
      args: ["-c", "echo ready; read -r go; stty size"],
      pty: { cols: 80, rows: 24 },
      timeout_ms: 30_000,
    });
    const first = collect(term);
    await first.until("ready");
    const t = await other.attachCommand("att-pty");
    expect(t.resize).toBeTypeOf("function");
    const seen = collect(t);
    await t.resize!(101, 31);
    await t.write!("go\n");
    expect((await t.wait()).exit_code).toBe(0);
    await seen.done;
    expect(seen.text()).toContain("31 101");
    expect((await term.wait()).stdout).toContain("31 101");
  });
});
