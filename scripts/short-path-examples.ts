// What the short-path tests type-check: the ```ts blocks of a README and checks that fail when the short path
// regresses (each `@ts-expect-error` must still be an error). Used by scripts/short-path.test.ts (sources)
// and packages/cli/src/packaging.test.ts (packed tarballs).

/** The ```ts blocks of a markdown file. */
export function tsBlocks(markdown: string): string[] {
  return [...markdown.matchAll(/^```ts\n([\s\S]*?)^```$/gm)].map((m) => m[1]!);
}

/** Type checks that fail when the short path regresses (each `@ts-expect-error` must still be an error). */
export const SHORT_PATH_CHECKS = `
import type { RemoteRunnerSession } from "@roder/runner-contract";
import { createE2bProvider, type E2bSession } from "@roder/runner-e2b";
import { createFlyProvider, type FlyAgentSession, type FlySession } from "@roder/runner-fly";
import { createHttpRunnerProvider, type HttpRunnerSession } from "@roder/runner-http";
import { createLocalProvider, type LocalSession, readText } from "@roder/runner-local";

const local: LocalSession = await createLocalProvider().createSession({ config: {} });
const http: HttpRunnerSession = await createHttpRunnerProvider({ token: "t" }).createSession({ config: {} });
// Exec mode or agent mode (the destination decides): both kinds have pause.
const fly: FlySession | FlyAgentSession = await createFlyProvider({ token: "t" }).createSession({ config: { app: "a", image: "i" } });
const e2b: E2bSession = await createE2bProvider({ apiKey: "k" }).createSession({ config: {} });
for (const s of [local, http, e2b]) {
  await s.startCommand({ program: "ls" });
  await s.attachCommand("c1");
}
await e2b.pause();
await fly.pause();
await local.writeFile({ path: "a", contents: "text" });
await local.writeFile({ path: "a", contents: new Uint8Array([1]) });
await local.exposePort({ port: 3000 });
await local.exportArtifact({ path: "out" });
const text: string = await readText(local, "a");
void text;

declare const generic: RemoteRunnerSession;
// @ts-expect-error the generic interface's optional methods stay optional
await generic.startCommand({ program: "ls" });
// @ts-expect-error contents is text or bytes
await local.writeFile({ path: "a", contents: 5 });
// @ts-expect-error a command needs its program
await local.runCommand({ args: ["x"] });
// @ts-expect-error an unknown option is refused
createE2bProvider({ apikey: "k" });
`;
