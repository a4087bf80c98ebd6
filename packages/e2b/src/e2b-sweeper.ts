import type { OwnedSession, SweepableProvider } from "@roder/runner-contract";
import { mapE2bError } from "./e2b-errors.js";
import { type E2bProviderSettings, e2bCredential, withE2bKey } from "./e2b-provider.js";

/** Lists and kills the sandboxes tagged with `roder_owner` (metadata written at creation). */
export function createE2bSweeper(settings: E2bProviderSettings = {}): SweepableProvider {
  const key = e2bCredential(settings);
  const apiKeyEnv = key.route;
  const env = settings.env ?? process.env;
  const opts = async () => ({
    apiKey: await key.get(),
    ...((settings.apiUrl ?? env.E2B_API_URL) ? { apiUrl: settings.apiUrl ?? env.E2B_API_URL } : {}),
    ...((settings.domain ?? env.E2B_DOMAIN) ? { domain: settings.domain ?? env.E2B_DOMAIN } : {}),
  });
  const sdk = async () => settings.sdk ?? ((await import("e2b")) as unknown as typeof import("e2b"));
  return {
    id: "e2b",
    async listOwnedSessions({ owner }): Promise<OwnedSession[]> {
      const { Sandbox } = await sdk();
      // The whole listing again when a rotated key was refused part of the way.
      const list = async (o: Awaited<ReturnType<typeof opts>>) => {
        const out: OwnedSession[] = [];
        const pages = Sandbox.list({ ...o, query: { metadata: { roder_owner: owner } } });
        while (pages.hasNext) {
          for (const s of await pages.nextItems()) {
            if (s.metadata?.roder_owner !== owner) continue;
            out.push({
              session_id: s.sandboxId,
              // E2B's own end (moved while the session is used) is when it goes; the creation tag is a fallback.
              expires_at: s.endAt ? new Date(s.endAt).toISOString() : (s.metadata?.roder_expires_at ?? null),
              state: String(s.state),
            });
          }
        }
        return out;
      };
      try {
        return await withE2bKey(key, opts, list);
      } catch (error) {
        throw mapE2bError(error, { operation: "list sandboxes", apiKeyEnv });
      }
    },
    async destroySession(id) {
      const { Sandbox } = await sdk();
      try {
        await withE2bKey(key, opts, (o) => Sandbox.kill(id, o));
      } catch (error) {
        throw mapE2bError(error, { operation: "kill sandbox", sandboxId: id, apiKeyEnv });
      }
    },
  };
}
