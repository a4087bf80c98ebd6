import { randomBytes } from "node:crypto";
import type { RemoteRunnerProvider, SecretResolver } from "@roder/runner-contract";
import { expect } from "vitest";

/**
 * Secret canaries: values a test hands out as secrets (tokens, keys, resolver answers) and then looks for in
 * every place they must never show (state, results, errors, a stand-in's request log).
 */
export interface SecretCanaries {
  /** A new canary: `prefix` followed by 24 random hex digits, kept in `values`. */
  make(prefix: string): string;
  /** Every canary made so far. */
  readonly values: readonly string[];
  /** Fails the test with the canaries found in any of `texts`. */
  expectAbsent(...texts: string[]): void;
}

export function createSecretCanaries(): SecretCanaries {
  const values: string[] = [];
  return {
    make(prefix) {
      const value = `${prefix}${randomBytes(12).toString("hex")}`;
      values.push(value);
      return value;
    },
    values,
    expectAbsent(...texts) {
      const all = texts.join("\n");
      expect(values.filter((c) => all.includes(c))).toEqual([]);
    },
  };
}

/** Everything an error shows (name, message, stack, JSON, and its causes'), to look for secrets in. */
export function errorText(error: unknown): string {
  const parts: string[] = [];
  let cur: unknown = error;
  for (let depth = 0; cur && depth < 8; depth++) {
    if (cur instanceof Error) {
      parts.push(cur.name, cur.message, cur.stack ?? "", JSON.stringify(cur));
      cur = (cur as { cause?: unknown }).cause;
    } else {
      parts.push(String(cur));
      break;
    }
  }
  return parts.join("\n");
}

/** The error `fn` fails with (and a failure of the check when it does not fail). */
export async function thrown(fn: () => Promise<unknown>): Promise<unknown> {
  try {
    await fn();
  } catch (error) {
    return error;
  }
  throw new Error("expected the operation to fail");
}

export interface ResolvedArtifactCredentialsCheck {
  /** A provider whose environment holds no storage credentials: it asks `secrets` for them. */
  createProvider(secrets: SecretResolver): RemoteRunnerProvider;
  /** The destination config; its `artifacts.credentials` names the secret `secretId`. */
  config: Record<string, unknown>;
  /** The id of the secret the artifacts config names. */
  secretId: string;
  /** What the resolver answers for it (e.g. `{ access_key_id, secret_access_key }`), canaries inside. */
  answer: Record<string, string>;
  /** The canaries in `answer`. */
  canaries: SecretCanaries;
  /** More places to scan once the exports are done (e.g. a stand-in's recorded request bodies). */
  observed?: () => string[];
}

/**
 * The artifact store's credentials come from a secret resolver: create, write, export (the URL serves the
 * bytes), resume in a second provider instance (which asks the resolver again), export again; the answer's
 * values never show in state, results or errors. The session is always closed.
 */
export async function checkResolvedArtifactCredentials(
  check: ResolvedArtifactCredentialsCheck,
): Promise<void> {
  const asked: string[] = [];
  const make = () =>
    check.createProvider(async (ref) => {
      asked.push(ref.id);
      return check.answer;
    });
  const session = await make().createSession({ config: check.config });
  try {
    expect(asked).toEqual([check.secretId]);
    await session.writeFile({ path: "a.txt", contents: "resolved" });
    const out = await session.exportArtifact({ path: "a.txt", recursive: false });
    expect(await (await fetch(out.url!)).text()).toBe("resolved");
    const again = await make().resumeSession(session.state());
    const out2 = await again.exportArtifact({ path: "a.txt", recursive: false });
    expect(await (await fetch(out2.url!)).text()).toBe("resolved");
    expect(asked).toEqual([check.secretId, check.secretId]);
    const bad = await thrown(() => again.readFile({ path: "/nope" }));
    check.canaries.expectAbsent(
      JSON.stringify(session.state()),
      JSON.stringify(out),
      JSON.stringify(out2),
      errorText(bad),
      ...(check.observed?.() ?? []),
    );
  } finally {
    await session.close();
  }
}
