import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import type { RunnerMount } from "@roder/runner-contract";
import { type BoxStandIn, startBoxStandIn } from "@roder/runner-testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLocalProvider } from "./local-provider.js";

// Box mounted for real: rclone's Box backend (fixed hosts api.box.com / upload.box.com) talks to the Box
// stand-in through an intercepting proxy on this machine's loopback, trusting a CA made for this run. rclone
// runs on the host, outside the session's sandbox; no traffic leaves the machine.
let box: BoxStandIn;
const secrets: Record<string, string> = {};

beforeAll(async () => {
  box = await startBoxStandIn();
  box.mkdir("roder");
  box.putFile("roder/in/notes.txt", "from box\n");
  box.putFile("roder/in/deep/more.txt", "nested\n");
  box.mkdir("roder/out");
}, 60_000);
afterAll(async () => {
  await box?.stop();
});

const env = (id: string, opts: { expired?: boolean } = {}) => {
  const token = box.tokenJson(opts);
  secrets[id] = token;
  const p = `RODER_SECRET_${id.toUpperCase()}_`;
  return {
    [`${p}TOKEN_JSON`]: token,
    [`${p}TOKEN_URL`]: box.tokenUrl,
    [`${p}HTTPS_PROXY`]: box.proxyUrl,
    [`${p}CA_CERT_FILE`]: box.caCertFile,
  };
};
const boxMount = (path: string, folder: string, readOnly: boolean, id: string): RunnerMount => ({
  name: path,
  path,
  read_only: readOnly,
  intent: { kind: "box_storage", uri: `box://${box.store.folderAt(folder)!.id}`, credentials: { id } },
});
const dest = (mounts: RunnerMount[], isolation: "none" | "bwrap" = "bwrap") => ({
  id: "box",
  provider_id: "unix-local",
  config: { isolation },
  default_manifest: { entries: [], mounts },
});
const rcloneArgvs = () =>
  readdirSync("/proc")
    .filter((n) => /^\d+$/.test(n))
    .flatMap((n) => {
      try {
        const argv = readFileSync(`/proc/${n}/cmdline`, "utf8");
        return argv.startsWith("rclone\0mount") || /\/rclone\0mount/.test(argv)
          ? [argv.replace(/\0/g, " ")]
          : [];
      } catch {
        return [];
      }
    });

describe("unix-local Box mounts (rclone + FUSE against the Box stand-in)", () => {
  it("read-only: the folder's files and subfolders are seen from the sandbox, writes are refused", async () => {
    const s = await createLocalProvider({ env: env("boxro") }).createSession(
      dest([boxMount("in", "roder/in", true, "boxro")]),
    );
    try {
      const r = await s.runCommand({
        command_id: "c",
        program: "sh",
        args: [
          "-c",
          "cat in/notes.txt in/deep/more.txt; echo x > in/new.txt 2>/dev/null && echo wrote || echo refused",
        ],
      });
      expect(r.stdout).toBe("from box\nnested\nrefused\n");
      expect(box.list("roder/in")).toEqual(["deep", "notes.txt"]);
      // The token is in rclone's environment, never on its command line or in the session's state.
      const argvs = rcloneArgvs().join("\n");
      expect(argvs).toContain("RODER:");
      expect(argvs).not.toContain(JSON.parse(secrets.boxro!).access_token);
      expect(JSON.stringify(s.state())).not.toContain(JSON.parse(secrets.boxro!).access_token);
    } finally {
      await s.close();
    }
    // Only Box's hosts were asked for; each CONNECT was answered by the proxy itself.
    expect(box.proxy.connects.length).toBeGreaterThan(0);
    expect(box.proxy.connects.every((c) => c.allowed && /(^|\.)box(cloud)?\.com$/.test(c.host))).toBe(true);
  }, 60_000);

  it("read-write: writes (a chunked upload above rclone's 50 MiB cutoff among them) are in Box when close returns, and the reverse", async () => {
    const s = await createLocalProvider({ env: env("boxrw") }).createSession(
      dest([boxMount("out", "roder/out", false, "boxrw")]),
    );
    const before = box.requests.length;
    try {
      const w = await s.runCommand({
        command_id: "w",
        program: "sh",
        args: [
          "-c",
          "echo done > out/status.txt && mkdir -p out/logs && seq 1 5000 > out/logs/seq.txt && head -c 55000000 /dev/urandom > out/big.bin",
        ],
      });
      expect(w.exit_code, w.stderr).toBe(0);
      const big = (await s.readFile({ path: "out/big.bin" })).contents;
      expect(big.length).toBe(55_000_000);
      // Written through Box's API while the session runs: the sandbox sees it.
      box.putFile("roder/out/from-api.txt", "written by the API\n");
      let seen = "";
      for (let i = 0; i < 40 && seen === ""; i++) {
        await new Promise((r) => setTimeout(r, 250));
        seen = (
          await s.runCommand({
            command_id: `r${i}`,
            program: "sh",
            args: ["-c", "cat out/from-api.txt 2>/dev/null"],
          })
        ).stdout;
      }
      expect(seen).toBe("written by the API\n");
      // Closed at once: rclone's write-back must be drained before the mount goes.
      await s.close();
      expect(box.readFile("roder/out/status.txt")?.toString()).toBe("done\n");
      expect(box.readFile("roder/out/logs/seq.txt")?.toString()).toBe(
        `${Array.from({ length: 5000 }, (_, i) => i + 1).join("\n")}\n`,
      );
      const stored = box.readFile("roder/out/big.bin");
      expect(stored?.length).toBe(55_000_000);
      expect(createHash("sha256").update(stored!).digest("hex")).toBe(
        createHash("sha256").update(big).digest("hex"),
      );
      const calls = box.requests.slice(before).map((r) => `${r.status} ${r.method} ${r.host}${r.path}`);
      expect(calls).toContainEqual(
        expect.stringMatching(/^201 POST upload\.box\.com\/api\/2\.0\/files\/upload_sessions$/),
      );
      expect(
        calls.filter((c) => /^200 PUT upload\.box\.com\/api\/2\.0\/files\/upload_sessions\/\w+$/.test(c))
          .length,
      ).toBe(Math.ceil(55_000_000 / (8 * 1024 * 1024)));
      expect(calls).toContainEqual(
        expect.stringMatching(/^201 POST upload\.box\.com\/api\/2\.0\/files\/upload_sessions\/\w+\/commit$/),
      );
      expect(calls).toContainEqual(
        expect.stringMatching(/^201 POST upload\.box\.com\/api\/2\.0\/files\/content$/),
      );
      expect(box.pendingUploadSessions()).toEqual([]);
    } finally {
      await s.close();
    }
  }, 180_000);

  it("an expired access token is refreshed at the configured token URL before the first call", async () => {
    const refreshes = box.refreshes;
    const s = await createLocalProvider({ env: env("boxexp", { expired: true }) }).createSession(
      dest([boxMount("in", "roder/in", true, "boxexp")], "none"),
    );
    try {
      expect(new TextDecoder().decode((await s.readFile({ path: "in/notes.txt" })).contents)).toBe(
        "from box\n",
      );
      expect(box.refreshes).toBe(refreshes + 1);
    } finally {
      await s.close();
    }
  }, 60_000);

  it("one expired TOKEN_JSON serves one mount process: Box's refresh tokens are single-use, so a second mount's refresh is refused", async () => {
    const shared = env("boxshared", { expired: true });
    const refreshes = box.refreshes;
    const first = await createLocalProvider({ env: shared }).createSession(
      dest([boxMount("in", "roder/in", true, "boxshared")], "none"),
    );
    try {
      expect(new TextDecoder().decode((await first.readFile({ path: "in/notes.txt" })).contents)).toBe(
        "from box\n",
      );
      expect(box.refreshes).toBe(refreshes + 1);
      const before = box.requests.length;
      const second = await createLocalProvider({ env: shared }).createSession(
        dest([boxMount("in", "roder/in", true, "boxshared")], "none"),
      );
      try {
        const r = await second.runCommand({ command_id: "c", program: "cat", args: ["in/notes.txt"] });
        expect(r.exit_code).not.toBe(0);
        const tokenCalls = box.requests.slice(before).filter((q) => q.path === "/oauth2/token");
        expect(tokenCalls.length).toBeGreaterThan(0);
        expect(tokenCalls.every((q) => q.status === 400)).toBe(true);
        expect(box.refreshes).toBe(refreshes + 1);
      } finally {
        await second.close();
      }
    } finally {
      await first.close();
    }
  }, 90_000);

  it("a rate-limited listing (429 rate_limit_exceeded with Retry-After) is absorbed by rclone's retries", async () => {
    const injected = box.faults.injected;
    const s = await createLocalProvider({ env: env("box429") }).createSession(
      dest([boxMount("in", "roder/in", true, "box429")], "none"),
    );
    try {
      const before = box.requests.length;
      box.faults.set({
        status: 429,
        retryAfterSeconds: 1,
        times: 2,
        match: /^GET \/2\.0\/folders\/\d+\/items$/,
      });
      const r = await s.runCommand({ command_id: "ls", program: "ls", args: ["in/deep"] });
      expect(r.exit_code, r.stderr).toBe(0);
      expect(r.stdout).toBe("more.txt\n");
      expect(box.faults.injected).toBe(injected + 2);
      const listings = box.requests.slice(before).filter((q) => /\/folders\/\d+\/items$/.test(q.path));
      expect(listings.map((q) => q.status).slice(0, 3)).toEqual([429, 429, 200]);
    } finally {
      box.faults.clear();
      await s.close();
    }
  }, 60_000);
});
