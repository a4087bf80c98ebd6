import { createLocalProvider } from "@roder/runner-local";
import { afterEach, describe, expect, it } from "vitest";
import { type FlyStandIn, type FlyStandInOptions, startFlyStandIn } from "./fly-standin.js";

// The stand-in through raw HTTP, as the Machines API would be spoken to: what it does by default is what Fly
// documents (../shared/CLOUD-FACTS.md), and each behaviour can be switched off.
let standIn: FlyStandIn | undefined;
afterEach(async () => {
  await standIn?.stop();
  standIn = undefined;
});

async function start(options: Partial<FlyStandInOptions> = {}) {
  standIn = await startFlyStandIn({ backend: createLocalProvider(), ...options });
  const s = standIn;
  const call = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${s.baseUrl}/apps/app-1${path}`, {
      method,
      headers: { authorization: `Bearer ${s.token}`, "content-type": "application/json" },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : undefined };
  };
  const create = async (config: Record<string, unknown> = {}) => {
    const r = await call("POST", "/machines", { config: { image: "debian:bookworm-slim", ...config } });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    const id = r.body.id as string;
    expect((await call("GET", `/machines/${id}/wait?state=started&timeout=30`)).status).toBe(200);
    return id;
  };
  const exec = (id: string, command: string[], timeout = 30) =>
    call("POST", `/machines/${id}/exec`, { command, timeout });
  return { s, call, create, exec };
}

describe("fly stand-in: documented behaviour by default", () => {
  it("rate-limits each machine per action (burst 3, then 429 with Retry-After and Fly's error body)", async () => {
    const { s, call, create } = await start();
    const id = await create();
    const statuses: number[] = [];
    let refused: Awaited<ReturnType<typeof call>> | undefined;
    for (let i = 0; i < 5; i++) {
      const r = await call("GET", `/machines/${id}`);
      statuses.push(r.status);
      if (r.status === 429) refused = r;
    }
    // The wait above was another action: gets still had their whole burst.
    expect(statuses.slice(0, 3)).toEqual([200, 200, 200]);
    expect(statuses.slice(3)).toContain(429);
    expect(refused!.body).toEqual({ error: "rate limit exceeded", status: "unknown" });
    expect(Number(refused!.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    expect(s.rateLimited).toBeGreaterThan(0);
    // Another machine's bucket is its own.
    const other = await create();
    expect((await call("GET", `/machines/${other}`)).status).toBe(200);
    // After Retry-After the action is allowed again.
    await new Promise((r) => setTimeout(r, Number(refused!.headers.get("retry-after")) * 1000));
    expect((await call("GET", `/machines/${id}`)).status).toBe(200);
  });

  it("answers an exec held past the limit with 408 while the command goes on in the machine", async () => {
    const { s, exec, create } = await start({ execRequestLimitMs: 1000 });
    const id = await create();
    const slow = await exec(id, ["/bin/sh", "-c", "sleep 2; echo done > /workspace/late.txt"]);
    expect(slow.status).toBe(408);
    expect(slow.body.status).toBe("unknown");
    expect(s.execTimeouts).toBe(1);
    await new Promise((r) => setTimeout(r, 2500));
    const r = await exec(id, ["cat", "/workspace/late.txt"]);
    expect(r.body).toEqual({ stdout: "done\n", stderr: "" });
  });

  it("resets a machine that is stopped and started again (files gone, config files back); start answers previous_state", async () => {
    const { call, create, exec } = await start();
    const id = await create({
      files: [{ guest_path: "/workspace/from-config.txt", raw_value: Buffer.from("cfg").toString("base64") }],
    });
    await exec(id, ["/bin/sh", "-c", "echo mine > /workspace/mine.txt"]);
    expect((await call("POST", `/machines/${id}/stop`, {})).status).toBe(200);
    expect((await call("GET", `/machines/${id}/wait?state=stopped&timeout=10`)).status).toBe(200);
    const started = await call("POST", `/machines/${id}/start`);
    expect(started.body).toEqual({ message: "", status: "success", previous_state: "stopped" });
    expect((await call("GET", `/machines/${id}/wait?state=started&timeout=10`)).status).toBe(200);
    const r = await exec(id, ["/bin/sh", "-c", "cat /workspace/from-config.txt; ls /workspace"]);
    expect(r.body.stdout).toContain("cfg");
    expect(r.body.stdout).not.toContain("mine.txt");
  });

  it("keeps the files of a stopped machine when resetOnStop is off", async () => {
    const { call, create, exec } = await start({ resetOnStop: false });
    const id = await create();
    await exec(id, ["/bin/sh", "-c", "echo mine > /workspace/mine.txt"]);
    await call("POST", `/machines/${id}/stop`, {});
    await call("POST", `/machines/${id}/start`);
    await call("GET", `/machines/${id}/wait?state=started&timeout=10`);
    expect((await exec(id, ["cat", "/workspace/mine.txt"])).body.stdout).toBe("mine\n");
  });

  it("shows a destroyed machine as destroyed for a while, then 404; refuses actions on it", async () => {
    const { s, call, create, exec } = await start({ destroyedLingerMs: 1500 });
    const id = await create();
    expect((await call("DELETE", `/machines/${id}`)).status).toBe(412);
    expect((await call("DELETE", `/machines/${id}?force=true`)).status).toBe(200);
    const gone = await call("GET", `/machines/${id}`);
    expect(gone.body.state).toBe("destroyed");
    expect((await exec(id, ["true"])).status).toBe(404);
    expect(s.machines()).toEqual([]);
    await new Promise((r) => setTimeout(r, 1600));
    const after = await call("GET", `/machines/${id}`);
    expect(after.status).toBe(404);
    expect(after.body).toEqual({ error: "machine not found", status: "unknown" });
  });

  it("refuses guest sizes Fly refuses, naming the limit; accepts the documented ones", async () => {
    const { call } = await start({ rateLimit: false });
    for (const guest of [
      { cpu_kind: "shared", cpus: 3, memory_mb: 768 },
      { cpu_kind: "shared", cpus: 1, memory_mb: 300 },
      { cpu_kind: "shared", cpus: 1, memory_mb: 4096 },
      { cpu_kind: "performance", cpus: 2, memory_mb: 2048 },
      { cpu_kind: "performance", cpus: 32, memory_mb: 65536 },
      { cpu_kind: "gpu", cpus: 1, memory_mb: 1024 },
    ]) {
      const r = await call("POST", "/machines", { config: { image: "x", guest }, skip_launch: true });
      expect(r.status, JSON.stringify(guest)).toBe(422);
      expect(r.body.error).toMatch(/cpu|memory/);
    }
    for (const guest of [
      { cpu_kind: "shared", cpus: 1, memory_mb: 256 },
      { cpu_kind: "shared", cpus: 8, memory_mb: 16384 },
      { cpu_kind: "performance", cpus: 16, memory_mb: 32768 },
    ]) {
      const r = await call("POST", "/machines", { config: { image: "x", guest }, skip_launch: true });
      expect(r.status, JSON.stringify(guest)).toBe(200);
    }
  });

  it("refuses to suspend a machine over 4 GB, with swap or a schedule; suspends a small one", async () => {
    const { call, create } = await start({ rateLimit: false });
    const big = await create({ guest: { cpu_kind: "performance", cpus: 1, memory_mb: 8192 } });
    const r = await call("POST", `/machines/${big}/suspend`);
    expect(r.status).toBe(412);
    expect(r.body.error).toContain("4096 MB");
    const swap = await create({ guest: { cpu_kind: "shared", cpus: 1, memory_mb: 1024, swap_size_mb: 512 } });
    expect((await call("POST", `/machines/${swap}/suspend`)).body.error).toContain("swap");
    const small = await create();
    expect((await call("POST", `/machines/${small}/suspend`)).status).toBe(200);
    expect((await call("GET", `/machines/${small}/wait?state=suspended&timeout=10`)).status).toBe(200);
  });

  it("wait takes whole seconds 1–60 and answers 408 when the state does not come", async () => {
    const { call } = await start({ rateLimit: false, startDelayMs: 60_000 });
    const r = await call("POST", "/machines", { config: { image: "x" } });
    expect((await call("GET", `/machines/${r.body.id}/wait?state=started&timeout=0`)).status).toBe(400);
    expect((await call("GET", `/machines/${r.body.id}/wait?state=started&timeout=61`)).status).toBe(400);
    const timedOut = await call("GET", `/machines/${r.body.id}/wait?state=started&timeout=1`);
    expect(timedOut.status).toBe(408);
    expect(timedOut.body.status).toBe("unknown");
  });

  it("switches behaviours off: no rate limit, no guest checks", async () => {
    const { s, call, create } = await start({ rateLimit: false, enforceGuestLimits: false });
    const id = await create({ guest: { cpu_kind: "shared", cpus: 3, memory_mb: 300 } });
    for (let i = 0; i < 8; i++) expect((await call("GET", `/machines/${id}`)).status).toBe(200);
    expect(s.rateLimited).toBe(0);
  });
});

describe("fly stand-in: init command and the app's public address", () => {
  it("routes fly-force-instance-id to that machine's service; a machine whose init exits stops", async () => {
    const { s, call, create } = await start({ rateLimit: false });
    // Each machine has a network of its own (as on Fly, where the proxy reaches a machine on its private address,
    // so a service listens on 0.0.0.0): two machines may use the same internal port.
    const port = await freePort();
    const ports = [port, port];
    const server = (port: number) =>
      `require("http").createServer((q, r) => r.end(process.env.WHO + ":" + q.url + ":" + (q.headers["fly-force-instance-id"] ?? "-"))).listen(${port}, "0.0.0.0")`;
    const ids: string[] = [];
    for (const [i, port] of ports.entries())
      ids.push(
        await create({
          init: { cmd: ["node", "-e", server(port)] },
          env: { WHO: `m${i}` },
          services: [
            { internal_port: port, protocol: "tcp", ports: [{ port: 443, handlers: ["tls", "http"] }] },
          ],
        }),
      );
    const get = async (id?: string) => {
      for (let n = 0; n < 50; n++) {
        const r = await fetch(`${s.appUrl}/hello?x=1`, {
          headers: id ? { "fly-force-instance-id": id } : {},
        });
        if (r.status !== 502) return { status: r.status, text: await r.text() };
        await new Promise((w) => setTimeout(w, 100));
      }
      throw new Error("the machine's service never answered");
    };
    // Each request reaches the machine it names (the header is Fly's, not passed on), with the machine's env.
    expect(await get(ids[1])).toEqual({ status: 200, text: "m1:/hello?x=1:-" });
    expect(await get(ids[0])).toEqual({ status: 200, text: "m0:/hello?x=1:-" });
    expect((await get("no-such-machine")).status).toBe(503);
    // A stopped machine takes nothing; a machine whose init command exits stops (restart policy "no").
    await call("POST", `/machines/${ids[0]}/stop`, {});
    expect((await get(ids[0])).status).toBe(503);
    const once = await create({ init: { cmd: ["true"] } });
    expect((await call("GET", `/machines/${once}/wait?state=stopped&timeout=20`)).status).toBe(200);
  }, 60_000);
});

describe("fly stand-in: volumes", () => {
  it("creates, attaches, keeps files across a reset, refuses what Fly refuses, deletes, then 404", async () => {
    const { s, call, create, exec } = await start({ rateLimit: false });
    // fly-go CreateVolumeRequest → Volume.
    expect((await call("POST", "/volumes", { name: "Bad-Name", region: "ams", size_gb: 1 })).status).toBe(
      400,
    );
    expect((await call("POST", "/volumes", { name: "data", size_gb: 1 })).status).toBe(400);
    expect((await call("POST", "/volumes", { name: "data", region: "ams", size_gb: 501 })).status).toBe(400);
    const made = await call("POST", "/volumes", { name: "data", region: "ams", size_gb: 1, encrypted: true });
    expect(made.status).toBe(200);
    expect(made.body).toMatchObject({
      name: "data",
      state: "created",
      size_gb: 1,
      region: "ams",
      encrypted: true,
      attached_machine_id: null,
    });
    const vol = made.body.id as string;
    expect(vol).toMatch(/^vol_/);
    // A volume mounts only in its region.
    const elsewhere = await call("POST", "/machines", {
      region: "iad",
      config: { image: "debian:bookworm-slim", mounts: [{ volume: vol, path: "/workspace" }] },
    });
    expect(elsewhere.status).toBe(422);
    expect(elsewhere.body.error).toMatch(/region/);
    // Without a region, the machine goes where its volume is.
    const id = await create({ mounts: [{ volume: vol, path: "/workspace" }] });
    expect((await call("GET", `/machines/${id}`)).body.region).toBe("ams");
    expect((await call("GET", `/volumes/${vol}`)).body.attached_machine_id).toBe(id);
    // One machine per volume.
    const twice = await call("POST", "/machines", {
      config: { image: "debian:bookworm-slim", mounts: [{ volume: vol, path: "/workspace" }] },
    });
    expect(twice.status).toBe(409);
    expect(
      (await exec(id, ["sh", "-c", "echo on-volume > /workspace/v.txt; echo on-root > /tmp/r.txt"])).status,
    ).toBe(200);
    // Stop then start: the root filesystem is rebuilt from the image, the volume's files are there.
    await call("POST", `/machines/${id}/stop`, {});
    await call("POST", `/machines/${id}/start`, {});
    expect((await call("GET", `/machines/${id}/wait?state=started&timeout=30`)).status).toBe(200);
    const after = await exec(id, ["sh", "-c", "cat /workspace/v.txt; cat /tmp/r.txt || echo no-root-file"]);
    expect(after.body.stdout).toBe("on-volume\nno-root-file\n");
    // An attached volume cannot be deleted; once its machine is destroyed it can, and is gone.
    const attached = await call("DELETE", `/volumes/${vol}`);
    expect(attached.status).toBe(412);
    expect(attached.body).toEqual({ error: expect.stringMatching(/attached/), status: "unknown" });
    expect((await call("DELETE", `/machines/${id}?force=true`)).status).toBe(200);
    expect((await call("GET", `/volumes/${vol}`)).body.attached_machine_id).toBeNull();
    const deleted = await call("DELETE", `/volumes/${vol}`);
    expect(deleted.status).toBe(200);
    expect(deleted.body.state).toBe("pending_destroy");
    expect((await call("GET", `/volumes/${vol}`)).status).toBe(404);
    expect((await call("GET", "/volumes")).body).toEqual([]);
    expect(s.volumes()).toEqual([]);
  }, 60_000);
});

async function freePort(): Promise<number> {
  const { createServer } = await import("node:net");
  return new Promise((resolve) => {
    const srv = createServer();
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}
