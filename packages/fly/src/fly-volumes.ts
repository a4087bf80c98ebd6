import { CancelledError, ProviderApiError, SessionNotFoundError, sleep } from "@roder/runner-contract";
import type { FlyApi } from "./fly-api.js";
import type { FlyDestinationConfig } from "./fly-config.js";

/** A Fly volume as the Machines API returns it (the fields we read; fly-go `Volume`). */
export interface FlyVolume {
  id: string;
  name: string;
  state: string;
  size_gb: number;
  region: string;
  attached_machine_id: string | null;
}

/** `POST /apps/{app}/volumes` (fly-go `CreateVolumeRequest`): the session's workspace volume. */
export async function createVolume(
  api: FlyApi,
  config: FlyDestinationConfig,
  signal?: AbortSignal,
): Promise<FlyVolume> {
  const volume = config.volume!;
  if (signal?.aborted) throw new CancelledError({ operation: "create session" });
  return api.call<FlyVolume>("POST", `/apps/${config.app}/volumes`, {
    body: { name: volume.name, region: config.region, size_gb: volume.size_gb, encrypted: true },
    idempotent: false,
    operation: "create volume",
  });
}

/** The machine config's `mounts`: the volume at the workspace root. */
export function volumeMounts(config: FlyDestinationConfig, volumeId: string) {
  return [{ volume: volumeId, path: config.workspace_root }];
}

/**
 * Deletes the volume once its machine is gone: waits (bounded) for the machine to be destroyed, since Fly
 * refuses to delete a volume still attached, then `DELETE /apps/{app}/volumes/{id}`. A volume already gone is
 * fine.
 */
export async function deleteVolume(
  api: FlyApi,
  app: string,
  volumeId: string,
  machineId: string | undefined,
  signal?: AbortSignal,
): Promise<void> {
  if (machineId)
    await api
      .call("GET", `/apps/${app}/machines/${machineId}/wait?state=destroyed&timeout=30`, {
        idempotent: true,
        operation: "wait for destroy",
        signal,
        machineId,
        retry408: false,
      })
      .catch(() => undefined);
  for (let attempt = 0; ; attempt++) {
    try {
      await api.call("DELETE", `/apps/${app}/volumes/${volumeId}`, {
        idempotent: true,
        operation: "delete volume",
        signal,
      });
      return;
    } catch (error) {
      if (SessionNotFoundError.isInstance(error)) return;
      if (ProviderApiError.isInstance(error) && error.statusCode === 404) return;
      // Still attached while the machine finishes being destroyed: try again for a while.
      if (ProviderApiError.isInstance(error) && error.statusCode === 412 && attempt < 10) {
        await sleep(Math.min(5000, 250 * 2 ** attempt));
        continue;
      }
      throw error;
    }
  }
}
