import { createLocalProvider } from "@roder/runner-local";
import { type BoxStandIn, startBoxStandIn } from "@roder/runner-testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHttpRunnerProvider } from "./http-provider.js";
import { createRunnerServer, type RunnerServer } from "./http-server.js";

// Box through the HTTP provider (issue 21): the client declares a box_storage mount by secret ref; the server's
// backend (the local runner, rclone on its host) resolves the ref from the server's environment and mounts the
// Box stand-in (reached through the intercepting proxy, trusting this run's CA). The client never holds the token.
const TOKEN = "box-server-token-5e1a";
let box: BoxStandIn;
let server: RunnerServer;
let url = "";
let accessToken = "";

beforeAll(async () => {
  box = await startBoxStandIn();
  box.mkdir("http");
  box.putFile("http/in/readme.txt", "box through http\n");
  box.mkdir("http/out");
  const tokenJson = box.tokenJson();
  accessToken = JSON.parse(tokenJson).access_token;
  const serverEnv = {
    PATH: process.env.PATH,
    RODER_SECRET_TEAMBOX_TOKEN_JSON: tokenJson,
    RODER_SECRET_TEAMBOX_TOKEN_URL: box.tokenUrl,
    RODER_SECRET_TEAMBOX_HTTPS_PROXY: box.proxyUrl,
    RODER_SECRET_TEAMBOX_CA_CERT_FILE: box.caCertFile,
  };
  server = createRunnerServer({
    provider: createLocalProvider({ env: serverEnv }),
    token: TOKEN,
    env: serverEnv,
  });
  url = (await server.listen(0)).url;
}, 60_000);
afterAll(async () => {
  await server?.close();
  await box?.stop();
});

const mount = (path: string, folder: string, readOnly: boolean) => ({
  name: path,
  path,
  read_only: readOnly,
  intent: {
    kind: "box_storage" as const,
    uri: `box://${box.store.folderAt(folder)!.id}`,
    credentials: { id: "teambox" },
  },
});

describe("Box mounts through the HTTP provider", () => {
  it("plans Box as a server-side mount, then reads a read-only folder and writes a read-write one (in Box by close)", async () => {
    const provider = createHttpRunnerProvider({ baseUrl: url, env: { RODER_RUNNER_HTTP_TOKEN: TOKEN } });
    const destination = {
      config: { backend_config: { isolation: "bwrap" } },
      default_manifest: {
        entries: [],
        mounts: [mount("in", "http/in", true), mount("out", "http/out", false)],
      },
    };
    const plan = provider.planMounts(destination);
    expect(plan.map((p) => [p.kind, p.credentials_in_sandbox])).toEqual([
      ["box_storage", false],
      ["box_storage", false],
    ]);
    await provider.validateDestination(destination);
    const session = await provider.createSession(destination);
    try {
      const r = await session.runCommand({
        command_id: "c",
        program: "sh",
        args: [
          "-c",
          "cat in/readme.txt; echo x > in/new.txt 2>/dev/null && echo wrote || echo refused; echo from-http > out/result.txt",
        ],
      });
      expect(r.stdout).toBe("box through http\nrefused\n");
      expect(JSON.stringify(session.state())).not.toContain(accessToken);
    } finally {
      await session.close();
    }
    expect(box.readFile("http/out/result.txt")?.toString()).toBe("from-http\n");
    expect(box.list("http/in")).toEqual(["readme.txt"]);
  }, 120_000);

  it("a Box ref the server cannot resolve is refused at create, naming the variables, and nothing is left", async () => {
    const provider = createHttpRunnerProvider({ baseUrl: url, env: { RODER_RUNNER_HTTP_TOKEN: TOKEN } });
    const before = server.sessionCount();
    const e = await provider
      .createSession({
        config: null,
        default_manifest: {
          entries: [],
          mounts: [
            {
              ...mount("in", "http/in", true),
              intent: { ...mount("in", "http/in", true).intent, credentials: { id: "nobox" } },
            },
          ],
        },
      })
      .catch((x) => x);
    expect(String(e)).toMatch(/RODER_SECRET_NOBOX_/);
    expect(server.sessionCount()).toBe(before);
  });
});
