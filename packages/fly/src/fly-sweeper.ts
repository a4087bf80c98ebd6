import type { OwnedSession, SweepableProvider } from "@roder/runner-contract";
import type { FlyMachine } from "./fly-api.js";
import { destroyMachine } from "./fly-machine-ops.js";
import { createFlyApi, type FlyProviderSettings } from "./fly-provider.js";
import { deleteVolume } from "./fly-volumes.js";

/**
 * Lists and removes the machines of one app that carry a `roder_owner` tag (written at creation, before the
 * machine starts), so `sweepExpiredSessions` can clean up after callers that died; a machine's workspace volume
 * goes with it.
 */
export function createFlySweeper(settings: FlyProviderSettings & { app: string }): SweepableProvider {
  const api = createFlyApi(settings);
  return {
    id: "fly",
    async listOwnedSessions({ owner, signal }): Promise<OwnedSession[]> {
      const machines = await api.call<FlyMachine[]>(
        "GET",
        `/apps/${settings.app}/machines?metadata.roder_owner=${encodeURIComponent(owner)}`,
        { idempotent: true, operation: "list machines", signal },
      );
      return machines
        .filter((m) => m.config?.metadata?.roder_owner === owner && m.state !== "destroyed")
        .map((m) => ({
          session_id: m.id,
          expires_at: m.config?.metadata?.roder_expires_at ?? null,
          state: m.state,
        }));
    },
    /** Destroys the machine, then its workspace volume (`roder_volume` metadata), if it had one. */
    async destroySession(id, opts) {
      const m = await api
        .call<FlyMachine>("GET", `/apps/${settings.app}/machines/${id}`, {
          idempotent: true,
          operation: "get machine",
          machineId: id,
          signal: opts?.signal,
        })
        .catch(() => null);
      await destroyMachine(api, settings.app, id, opts?.signal);
      const volume = m?.config?.metadata?.roder_volume;
      if (volume) await deleteVolume(api, settings.app, volume, id, opts?.signal);
    },
  };
}
