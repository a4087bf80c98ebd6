// Port previews.
import { randomUUID } from "node:crypto";
import { UnsupportedCapabilityError } from "@roder/runner-contract";
import { expect } from "vitest";
import { type ConformanceSuite, freePort, thrown } from "./conformance-suite.js";

/** exposePort answers a URL that reaches a server in the session (or is refused typed). */
export function portChecks(suite: ConformanceSuite): void {
  const { check, options, id, sh } = suite;
  check(
    "previews a port",
    async () => {
      const caps = suite.provider.capabilities();
      if (!caps.port_preview) {
        expect(
          UnsupportedCapabilityError.isInstance(
            await thrown(() => suite.session.exposePort({ port: 8080, label: null })),
          ),
        ).toBe(true);
        return;
      }
      const port = await freePort();
      const token = randomUUID();
      const script = `require('http').createServer((q,s)=>s.end(${JSON.stringify(token)})).listen(${port},'0.0.0.0')`;
      const cid = id();
      const server = suite.session.startCommand
        ? await suite.session.startCommand({ command_id: cid, program: "node", args: ["-e", script] })
        : null;
      if (!server) await sh(`nohup node -e "${script.replace(/"/g, '\\"')}" >/dev/null 2>&1 &`);
      try {
        const result = await suite.session.exposePort({ port, label: "web" });
        expect(result.port).toBe(port);
        expect(result.url).toMatch(/^https?:\/\//);
        if ((options.portPreview ?? "reachable") === "reachable") {
          let body = "";
          for (let i = 0; i < 100 && body !== token; i++) {
            body = await fetch(result.url!)
              .then((r) => r.text())
              .catch(() => "");
            if (body !== token) await new Promise((r) => setTimeout(r, 100));
          }
          expect(body).toBe(token);
        }
      } finally {
        if (server) await server.kill();
        else await sh(`pkill -f ${port} || true`);
      }
    },
    60_000,
  );
}
