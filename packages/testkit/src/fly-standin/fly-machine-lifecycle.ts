import type { RemoteRunnerSession, RunnerDestination } from "@roder/runner-contract";
import { sleep } from "./fly-http.js";
import { servicePort } from "./fly-machine-config.js";
import type { FlyMachineState, FlyStandInMachine, FlyStandInOptions } from "./fly-standin-types.js";

/**
 * A machine's life: its states (each change wakes the `wait` requests), its API view, boot from the image (a
 * fresh backend session with the config's files, volumes and init), init, and halt.
 */
export function createMachineLifecycle(ctx: {
  options: FlyStandInOptions;
  backendDestination: (id: string, config: Record<string, unknown>) => RunnerDestination;
  /** Wakes the requests waiting for a state. */
  notify: () => void;
  /** `failNextStart`: the next boot fails (`launch_failed`), once. */
  flags: { failNextStart: boolean };
  saveVolumes: (m: FlyStandInMachine, session: RemoteRunnerSession) => Promise<void>;
  restoreVolumes: (m: FlyStandInMachine, session: RemoteRunnerSession) => Promise<void>;
  transitionMs: number;
  resetOnStop: boolean;
}) {
  const setState = (m: FlyStandInMachine, state: FlyMachineState) => {
    m.state = state;
    m.updated_at = new Date().toISOString();
    if (state === "destroyed") m.destroyed_at = Date.now();
    ctx.notify();
  };

  const view = (m: FlyStandInMachine) => ({
    id: m.id,
    name: m.name,
    state: m.state,
    region: m.region,
    instance_id: m.instance_id,
    private_ip: "fdaa::1",
    config: m.config,
    image_ref: {
      registry: "registry-1.docker.io",
      repository: String((m.config as { image?: string }).image ?? ""),
      tag: "latest",
    },
    created_at: m.created_at,
    updated_at: m.updated_at,
    events: [],
  });

  /** Boots the machine from its image: a fresh backend session with the config's `files` written. */
  async function boot(m: FlyStandInMachine): Promise<void> {
    setState(m, "starting");
    await sleep(ctx.options.startDelayMs ?? 150);
    if (m.state !== "starting") return;
    if (ctx.flags.failNextStart) {
      ctx.flags.failNextStart = false;
      setState(m, "launch_failed");
      return;
    }
    try {
      const session = await ctx.options.backend.createSession(ctx.backendDestination(m.id, m.config));
      if ((m.state as FlyMachineState) !== "starting") {
        await session.close().catch(() => {});
        return;
      }
      m.session = session;
      await ctx.restoreVolumes(m, session);
      const port = servicePort(m);
      m.serviceUrl =
        typeof port === "number"
          ? ((await session.exposePort({ port })).url ?? `http://127.0.0.1:${port}`).replace(/\/+$/, "")
          : undefined;
      const files = (
        (m.config as { files?: Array<{ guest_path: string; raw_value?: string }> }).files ?? []
      ).filter((f) => f.raw_value !== undefined);
      for (const f of files)
        await session.writeFile({
          path: f.guest_path,
          contents: new Uint8Array(Buffer.from(f.raw_value!, "base64")),
        });
      await startInit(m, session);
      if ((m.state as FlyMachineState) === "starting") setState(m, "started");
    } catch {
      setState(m, "launch_failed");
    }
  }

  /**
   * Runs `config.init.cmd` with `config.env` in the machine while it is up. With restart policy "no" (the
   * default here), a machine whose init command exits stops, as on Fly.
   */
  async function startInit(m: FlyStandInMachine, session: RemoteRunnerSession): Promise<void> {
    const init = (m.config as { init?: { cmd?: unknown } }).init?.cmd;
    if (!Array.isArray(init) || init.length === 0 || !session.startCommand) return;
    const env = Object.entries((m.config as { env?: Record<string, unknown> }).env ?? {}).map(
      ([k, v]) => [k, String(v)] as [string, string],
    );
    const handle = await session.startCommand({
      command_id: `init-${m.id}`,
      program: String(init[0]),
      args: init.slice(1).map(String),
      env,
    });
    m.init = handle;
    void (async () => {
      for await (const chunk of handle.output) {
        // The init's output is the machine's log (its last 64 KiB kept, as `fly logs` would show it).
        m.log = (m.log + new TextDecoder().decode(chunk.data)).slice(-64 * 1024);
      }
      await handle.wait().catch(() => undefined);
      const policy = (m.config as { restart?: { policy?: string } }).restart?.policy ?? "no";
      if (m.init === handle && m.session === session && m.state === "started" && policy === "no") {
        m.init = undefined;
        await halt(m);
      }
    })();
  }

  /** Stop: the VM halts; with `resetOnStop` its root filesystem and processes are gone (rebuilt at start). */
  async function halt(m: FlyStandInMachine): Promise<void> {
    setState(m, "stopping");
    const init = m.init;
    m.init = undefined;
    await init?.kill().catch(() => false);
    await sleep(ctx.transitionMs);
    if (ctx.resetOnStop) {
      const s = m.session;
      m.session = undefined;
      if (s) await ctx.saveVolumes(m, s);
      await s?.close().catch(() => {});
    }
    if (m.state === "stopping") setState(m, "stopped");
  }

  return { setState, view, boot, halt };
}
