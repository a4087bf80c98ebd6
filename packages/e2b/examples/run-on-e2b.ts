/** E2B_API_KEY=… pnpm exec tsx packages/e2b/examples/run-on-e2b.ts */
import { createE2bProvider } from "@roder/runner-e2b";

const provider = createE2bProvider();
const hint = provider.setupHint();
if (hint) throw new Error(hint);
const session = await provider.createSession({
  id: "example",
  provider_id: "e2b",
  config: { template: "base" },
  default_manifest: { entries: [], mounts: [] },
});
try {
  const handle = await session.startCommand!({
    command_id: "c1",
    program: "sh",
    args: ["-c", "for i in 1 2 3; do echo step $i; sleep 1; done"],
  });
  for await (const chunk of handle.output) process.stdout.write(new TextDecoder().decode(chunk.data));
  console.log(await session.exposePort({ port: 3000, label: "web" }));
} finally {
  await session.close();
}
