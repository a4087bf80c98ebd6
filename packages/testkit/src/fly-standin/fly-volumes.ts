import { randomBytes } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { RemoteRunnerSession } from "@roder/runner-contract";
import { ApiError, readJson, send } from "./fly-http.js";
import type { FlyStandIn, FlyStandInMachine, FlyStandInVolume } from "./fly-standin-types.js";

/**
 * Fly volumes: the `/v1/apps/{app}/volumes` API, a machine's `config.mounts` checked and attached at create, and
 * the files under each mount path kept across a machine's reset and destroy.
 */
export function createFlyVolumes(ctx: {
  volumes: Map<string, FlyStandInVolume>;
  machines: Map<string, FlyStandInMachine>;
  bodies: FlyStandIn["bodies"];
  takeToken: (key: string) => void;
}) {
  const { volumes, machines, bodies, takeToken } = ctx;

  /** The machine's volume mounts (`config.mounts`: `{volume, path}`). */
  const mountsOf = (m: Pick<FlyStandInMachine, "config">) =>
    ((m.config as { mounts?: Array<{ volume?: unknown; path?: unknown }> }).mounts ?? []).filter(
      (x): x is { volume: string; path: string } =>
        typeof x.volume === "string" && typeof x.path === "string",
    );

  /**
   * A volume outlives the machine's root filesystem: before the machine is reset (stop) or destroyed, the files
   * under each mount path are kept as the volume's contents (a tar archive made in the machine)...
   */
  async function saveVolumes(m: FlyStandInMachine, session: RemoteRunnerSession): Promise<void> {
    for (const mount of mountsOf(m)) {
      const v = volumes.get(mount.volume);
      if (!v) continue;
      const file = `/tmp/.fly-volume-${v.id}.tar`;
      const r = await session
        .runCommand({
          command_id: `volume-save-${randomBytes(4).toString("hex")}`,
          program: "tar",
          args: ["-C", mount.path, "-cf", file, "."],
        })
        .catch(() => null);
      if (r?.exit_code !== 0) continue;
      v.contents = (await session.readFile({ path: file }).catch(() => null))?.contents;
    }
  }

  /** ...and are there again, under the same path, when the machine boots. */
  async function restoreVolumes(m: FlyStandInMachine, session: RemoteRunnerSession): Promise<void> {
    for (const mount of mountsOf(m)) {
      const v = volumes.get(mount.volume);
      if (!v?.contents) continue;
      const file = `/tmp/.fly-volume-${v.id}.tar`;
      await session.writeFile({ path: file, contents: v.contents });
      const r = await session.runCommand({
        command_id: `volume-restore-${randomBytes(4).toString("hex")}`,
        program: "sh",
        args: ["-c", 'mkdir -p -- "$1" && tar -C "$1" -xpf "$2" && rm -f -- "$2"', "sh", mount.path, file],
      });
      if (r.exit_code !== 0)
        throw new Error(`volume ${v.id} could not be mounted at ${mount.path}: ${r.stderr}`);
    }
  }

  const volumeView = (v: FlyStandInVolume) => ({
    id: v.id,
    name: v.name,
    state: v.state,
    size_gb: v.size_gb,
    region: v.region,
    zone: v.zone,
    encrypted: v.encrypted,
    attached_machine_id: v.attached_machine_id,
    attached_alloc_id: null,
    created_at: v.created_at,
    host_dedication_id: "",
    snapshot_retention: 5,
    auto_backup_enabled: true,
  });

  /** `/v1/apps/{app}/volumes[/{id}]` (fly-go flaps_volumes.go). */
  async function routeVolumes(req: IncomingMessage, res: ServerResponse, app: string, id?: string) {
    const method = req.method ?? "GET";
    if (!id) {
      if (method === "POST") {
        takeToken(`app:${app}:volume_create`);
        const body = await readJson(req);
        bodies.push({ path: `/v1/apps/${app}/volumes`, body });
        if (typeof body.name !== "string" || !/^[a-z0-9_]{1,30}$/.test(body.name))
          throw new ApiError(
            400,
            "invalid volume name: lowercase alphanumeric characters and underscores, at most 30",
          );
        if (typeof body.region !== "string" || !body.region) throw new ApiError(400, "region is required");
        const size = body.size_gb ?? 3;
        if (typeof size !== "number" || !Number.isInteger(size) || size < 1 || size > 500)
          throw new ApiError(400, "size_gb must be a whole number of GB between 1 and 500");
        const v: FlyStandInVolume = {
          id: `vol_${randomBytes(8).toString("hex")}`,
          app,
          name: body.name,
          state: "created",
          size_gb: size,
          region: body.region,
          zone: randomBytes(2).toString("hex"),
          encrypted: body.encrypted !== false,
          attached_machine_id: null,
          created_at: new Date().toISOString(),
        };
        volumes.set(v.id, v);
        return send(res, 200, volumeView(v));
      }
      if (method === "GET") {
        takeToken(`app:${app}:volume_list`);
        return send(res, 200, [...volumes.values()].filter((v) => v.app === app).map(volumeView));
      }
      throw new ApiError(404, "not found");
    }
    takeToken(`volume:${id}:${method}`);
    const v = volumes.get(id);
    if (!v || v.app !== app) throw new ApiError(404, "volume not found");
    if (method === "GET") return send(res, 200, volumeView(v));
    if (method === "DELETE") {
      const holder = v.attached_machine_id ? machines.get(v.attached_machine_id) : undefined;
      if (holder && holder.state !== "destroyed")
        throw new ApiError(
          412,
          `failed_precondition: volume ${v.id} is attached to machine ${holder.id}: destroy the machine first`,
        );
      volumes.delete(v.id);
      v.state = "pending_destroy";
      return send(res, 200, volumeView(v));
    }
    throw new ApiError(404, "not found");
  }

  /** A machine's `config.mounts` at create: each volume exists, is free, and is in the machine's region. */
  function attachVolumes(app: string, machineId: string, region: string, config: Record<string, unknown>) {
    const wanted = mountsOf({ config });
    for (const mount of wanted) {
      const v = volumes.get(mount.volume);
      if (!v || v.app !== app) throw new ApiError(404, `volume ${mount.volume} not found`);
      if (v.attached_machine_id && machines.get(v.attached_machine_id)?.state !== "destroyed")
        throw new ApiError(409, `volume ${v.id} is already attached to machine ${v.attached_machine_id}`);
      if (v.region !== region)
        throw new ApiError(
          422,
          `volume ${v.id} is in region ${v.region}, the machine in ${region}: a volume mounts only in its region`,
        );
      if (!mount.path.startsWith("/")) throw new ApiError(400, `mount path must be absolute: ${mount.path}`);
    }
    for (const mount of wanted) volumes.get(mount.volume)!.attached_machine_id = machineId;
  }

  return { mountsOf, saveVolumes, restoreVolumes, routeVolumes, attachVolumes };
}
