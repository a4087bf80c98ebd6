import { describe, expect, it } from "vitest";
import { OutputLog } from "./output-queue.js";

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (d: Uint8Array) => new TextDecoder().decode(d);

async function drain(q: AsyncIterable<{ stream: string; data: Uint8Array }>): Promise<string> {
  let out = "";
  for await (const c of q) out += `${c.stream[3]}:${dec(c.data)} `;
  return out.trim();
}

describe("OutputLog (the output a reattached follower sees)", () => {
  it("replays what it retained, then live chunks, to every follower, and ends them all", async () => {
    const log = new OutputLog();
    log.push({ stream: "stdout", data: enc("a") });
    const early = log.follow();
    log.push({ stream: "stderr", data: enc("b") });
    const late = log.follow();
    const live = log.follow({ replay: false });
    log.push({ stream: "stdout", data: enc("c") });
    log.end();
    expect(await drain(early.output)).toBe("o:a e:b o:c");
    expect(await drain(late.output)).toBe("o:a e:b o:c");
    expect(await drain(live.output)).toBe("o:c");
    expect(await drain(log.follow().output)).toBe("o:a e:b o:c");
  });

  it("drops the oldest past its bound and says, per stream, where a replay starts", async () => {
    const log = new OutputLog(4);
    for (const [stream, s] of [
      ["stdout", "11"],
      ["stderr", "22"],
      ["stdout", "33"],
    ] as const)
      log.push({ stream, data: enc(s) });
    const f = log.follow();
    expect(f.offset).toEqual({ stdout: 2, stderr: 0 });
    log.end();
    expect(await drain(f.output)).toBe("e:22 o:33");
  });

  it("a stopped follower ends at once and gets nothing more", async () => {
    const log = new OutputLog();
    const f = log.follow();
    f.stop();
    log.push({ stream: "stdout", data: enc("x") });
    expect(await drain(f.output)).toBe("");
  });
});
