// What the file API addresses: the workspace only, or the sandbox's own view.
import { randomUUID } from "node:crypto";
import { PathOutsideWorkspaceError, RunnerError } from "@roder/runner-contract";
import { expect } from "vitest";
import { type ConformanceSuite, thrown } from "./conformance-suite.js";

/** Paths and symlinks outside the workspace are refused, or (fileScope 'sandbox') the sandbox's own view is addressed and nothing outside it. */
export function fileScopeChecks(suite: ConformanceSuite): void {
  const { check, options, id, sh } = suite;
  if ((options.fileScope ?? "workspace") === "workspace") {
    check("refuses paths outside the workspace before touching the runner", async () => {
      for (const path of ["../outside.txt", "a/../../outside.txt", "/etc/passwd-roder-test", "a\u0000b"]) {
        const e = await thrown(() => suite.session.writeFile({ path, contents: new Uint8Array([1]) }));
        expect(PathOutsideWorkspaceError.isInstance(e), `${JSON.stringify(path)}: ${e}`).toBe(true);
      }
      const r = await thrown(() => suite.session.readFile({ path: "../../../../etc/hostname" }));
      expect(PathOutsideWorkspaceError.isInstance(r)).toBe(true);
      const c = await thrown(() => suite.session.runCommand({ command_id: id(), program: "true", cwd: "/" }));
      expect(PathOutsideWorkspaceError.isInstance(c)).toBe(true);
    });

    check("refuses symlinks that lead outside", async () => {
      const made = await sh("ln -s /etc escape-link && ln -s /etc/hostname escape-file && echo ok");
      expect(made.stdout.trim()).toBe("ok");
      const e1 = await thrown(() => suite.session.readFile({ path: "escape-file" }));
      expect(PathOutsideWorkspaceError.isInstance(e1), String(e1)).toBe(true);
      const e2 = await thrown(() =>
        suite.session.writeFile({ path: "escape-link/roder-pwned", contents: new Uint8Array([1]) }),
      );
      expect(PathOutsideWorkspaceError.isInstance(e2), String(e2)).toBe(true);
      const e3 = await thrown(() => suite.session.readFile({ path: "escape-link/hostname" }));
      expect(PathOutsideWorkspaceError.isInstance(e3)).toBe(true);
    });
  } else {
    check("the file API addresses the sandbox's own view, and nothing outside it", async () => {
      const token = randomUUID();
      // A file in the sandbox's /tmp, through the file API, read by a command, and back.
      await suite.session.writeFile({
        path: `/tmp/roder-scope-${token}`,
        contents: new TextEncoder().encode(token),
      });
      const seen = await sh(
        `cat /tmp/roder-scope-${token}; printf ' %s' ${token} > /tmp/roder-scope-${token}.b`,
      );
      expect(seen.stdout).toBe(token);
      const back = await suite.session.readFile({ path: `/tmp/roder-scope-${token}.b` });
      expect(new TextDecoder().decode(back.contents)).toBe(` ${token}`);
      // A system file, and a command whose cwd is /tmp.
      const hostname = await suite.session.readFile({ path: "/etc/hostname" });
      expect(hostname.contents.length).toBeGreaterThan(0);
      const cwd = await suite.session.runCommand({ command_id: id(), program: "pwd", cwd: "/tmp" });
      expect(cwd.stdout.trim()).toBe("/tmp");
      // Relative paths are the workspace's; `..` stays in the sandbox's own tree.
      await suite.session.writeFile({ path: "scope.txt", contents: new Uint8Array([7]) });
      expect((await sh("od -An -tu1 scope.txt")).stdout.trim()).toBe("7");
      // The system is read-only; a symlink out of the workspace reads the sandbox's own file, and writes
      // through it fail there: the host's /etc is untouched.
      const ro = await thrown(() =>
        suite.session.writeFile({ path: `/etc/roder-scope-${token}`, contents: new Uint8Array([1]) }),
      );
      expect(RunnerError.isInstance(ro), String(ro)).toBe(true);
      const made = await sh("ln -sfn /etc scope-etc && ln -sfn /etc/hostname scope-host && echo ok");
      expect(made.stdout.trim()).toBe("ok");
      const viaLink = await suite.session.readFile({ path: "scope-host" });
      expect(viaLink.contents).toEqual(hostname.contents);
      const w = await thrown(() =>
        suite.session.writeFile({ path: `scope-etc/roder-scope-${token}`, contents: new Uint8Array([1]) }),
      );
      expect(RunnerError.isInstance(w), String(w)).toBe(true);
      const { existsSync } = await import("node:fs");
      expect(existsSync(`/etc/roder-scope-${token}`)).toBe(false);
      // NUL bytes are refused before anything runs.
      const nul = await thrown(() =>
        suite.session.writeFile({ path: "a\u0000b", contents: new Uint8Array([1]) }),
      );
      expect(RunnerError.isInstance(nul)).toBe(true);
      await sh(`rm -f /tmp/roder-scope-${token} /tmp/roder-scope-${token}.b scope.txt scope-etc scope-host`);
    });
  }
}
