import { loadToken, type OwnedSession, type SweepableProvider, tokenRoute } from "@roder/runner-contract";
import { mapE2bError } from "./e2b-errors.js";
import type { E2bProviderSettings } from "./e2b-provider.js";

/** Lists and kills the sandboxes tagged with `roder_owner` (metadata written at creation). */
export function createE2bSweeper(settings: E2bProviderSettings = {}): SweepableProvider {
  const envName = settings.apiKeyEnv ?? "E2B_API_KEY";
  const apiKeyEnv = tokenRoute({ option: settings.apiKey, envName, optionName: "apiKey" });
  const env = settings.env ?? process.env;
  const opts = () => ({
    apiKey: loadToken({
      option: settings.apiKey,
      env,
      envName,
      providerId: "e2b",
      optionName: "apiKey",
      description: "the E2B API key",
    }),
    ...((settings.apiUrl ?? env.E2B_API_URL) ? { apiUrl: settings.apiUrl ?? env.E2B_API_URL } : {}),
    ...((settings.domain ?? env.E2B_DOMAIN) ? { domain: settings.domain ?? env.E2B_DOMAIN } : {}),
  });
  const sdk = async () => settings.sdk ?? ((await import("e2b")) as unknown as typeof import("e2b"));
  return {
    id: "e2b",
    async listOwnedSessions({ owner }): Promise<OwnedSession[]> {
      const { Sandbox } = await sdk();
      const out: OwnedSession[] = [];
      try {
        const pages = Sandbox.list({ ...opts(), query: { metadata: { roder_owner: owner } } });
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
      } catch (error) {
        throw mapE2bError(error, { operation: "list sandboxes", apiKeyEnv });
      }
      return out;
    },
    async destroySession(id) {
      const { Sandbox } = await sdk();
      try {
        await Sandbox.kill(id, opts());
      } catch (error) {
        throw mapE2bError(error, { operation: "kill sandbox", sandboxId: id, apiKeyEnv });
      }
    },
  };
}
