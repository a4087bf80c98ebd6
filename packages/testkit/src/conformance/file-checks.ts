// File round trips through the file API.
import { createHash } from "node:crypto";
import { expect } from "vitest";
import type { ConformanceSuite } from "./conformance-suite.js";

/** All byte values, a large binary file, overwrites and parent directories. */
export function fileChecks(suite: ConformanceSuite): void {
  const { check, id, large } = suite;
  check("round-trips all 256 byte values", async () => {
    const bytes = Uint8Array.from({ length: 256 }, (_, i) => i);
    await suite.session.writeFile({ path: "bin/all.bin", contents: bytes });
    const back = await suite.session.readFile({ path: "bin/all.bin" });
    expect(Buffer.from(back.contents).equals(Buffer.from(bytes))).toBe(true);
    // The runner sees the same bytes.
    const r = await suite.session.runCommand({
      command_id: id(),
      program: "node",
      args: [
        "-e",
        "const b=require('fs').readFileSync('bin/all.bin');process.stdout.write(String(b.length)+':'+require('crypto').createHash('sha256').update(b).digest('hex'))",
      ],
    });
    expect(r.stdout).toBe(`256:${createHash("sha256").update(bytes).digest("hex")}`);
  });

  check(
    `round-trips a ${Math.round(large / 1024 / 1024)} MiB binary file`,
    async () => {
      const big = new Uint8Array(large);
      for (let i = 0; i < big.length; i++) big[i] = (i * 2654435761) >>> 24;
      await suite.session.writeFile({ path: "bin/large.bin", contents: big });
      const back = await suite.session.readFile({ path: `${suite.root}/bin/large.bin` });
      expect(back.contents.length).toBe(big.length);
      expect(createHash("sha256").update(back.contents).digest("hex")).toBe(
        createHash("sha256").update(big).digest("hex"),
      );
    },
    120_000,
  );

  check("overwrites files and creates parents", async () => {
    await suite.session.writeFile({ path: "deep/a/b/c.txt", contents: new TextEncoder().encode("one") });
    await suite.session.writeFile({ path: "deep/a/b/c.txt", contents: new TextEncoder().encode("2") });
    expect(
      new TextDecoder().decode((await suite.session.readFile({ path: "deep/a/b/c.txt" })).contents),
    ).toBe("2");
  });
}
