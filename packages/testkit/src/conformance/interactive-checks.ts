// Interactive commands: stdin and PTYs.
import { expect } from "vitest";
import type { ConformanceSuite } from "./conformance-suite.js";

/** Run when the options name 'stdin' or 'pty'. */
export function interactiveChecks(suite: ConformanceSuite): void {
  const { check, options, id } = suite;
  if (options.interactive?.includes("stdin")) {
    check("a line-reading program answers lines written to its stdin; closeStdin ends cat", async () => {
      const h = await suite.session.startCommand!({
        command_id: id(),
        program: "sh",
        args: ["-c", 'while read -r line; do echo "got:$line"; done; echo bye'],
        stdin: true,
        timeout_ms: 30_000,
      } as never);
      const seen: string[] = [];
      const reader = (async () => {
        let buf = "";
        for await (const c of h.output) {
          if (c.stream !== "stdout") continue;
          buf += new TextDecoder().decode(c.data);
          seen.push(...buf.split("\n").slice(0, -1));
          buf = buf.slice(buf.lastIndexOf("\n") + 1);
        }
      })();
      await h.write!("one\n");
      for (let i = 0; i < 100 && !seen.includes("got:one"); i++) await new Promise((r) => setTimeout(r, 50));
      // The first answer came before the second line was written: the program is interactive.
      expect(seen).toEqual(["got:one"]);
      await h.write!(new TextEncoder().encode("two\n"));
      await h.closeStdin!();
      const r = await h.wait();
      await reader;
      expect(r.exit_code).toBe(0);
      expect(r.stdout).toBe("got:one\ngot:two\nbye\n");
      await expect(h.write!("late\n")).rejects.toThrow();
      const cat = await suite.session.startCommand!({
        command_id: id(),
        program: "cat",
        stdin: true,
      } as never);
      await cat.write!(new Uint8Array([0, 255, 10]));
      await cat.closeStdin!();
      const cr = await cat.wait();
      expect(cr.exit_code).toBe(0);
    });
  }

  if (options.interactive?.includes("pty")) {
    check("a PTY command sees a terminal of the asked size, and resize reaches it", async () => {
      const h = await suite.session.startCommand!({
        command_id: id(),
        program: "sh",
        args: ["-c", "test -t 1 && echo tty; stty size; read -r go; stty size"],
        pty: { cols: 100, rows: 30 },
        timeout_ms: 30_000,
      } as never);
      let out = "";
      const reader = (async () => {
        for await (const c of h.output) out += new TextDecoder().decode(c.data);
      })();
      for (let i = 0; i < 100 && !out.includes("30 100"); i++) await new Promise((r) => setTimeout(r, 50));
      expect(out).toContain("tty");
      expect(out).toContain("30 100");
      await h.resize!(120, 40);
      await h.write!("go\n");
      const r = await h.wait();
      await reader;
      expect(r.exit_code).toBe(0);
      expect(out).toContain("40 120");
    });
  }
}
