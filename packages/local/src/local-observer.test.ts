import {
  RunnerLimitsSchema,
  type RunnerOperationEvent,
  RunnerOperationEventSchema,
  withObserver,
} from "@roder/runner-contract";
import { describe, expect, it } from "vitest";
import { createLocalProvider } from "./local-provider.js";

const CANARY = "observer-canary-secret-3c1d";

describe("withObserver over unix-local (metrics hooks)", () => {
  it("emits one event per operation with durations, bytes and outcomes, and never an argument", async () => {
    const events: RunnerOperationEvent[] = [];
    const provider = withObserver(createLocalProvider({ env: { RODER_SECRET_X_TOKEN: CANARY } }), (e) =>
      events.push(e),
    );
    const session = await provider.createSession({
      id: "obs",
      provider_id: "unix-local",
      config: {},
      default_manifest: { entries: [], mounts: [] },
    });
    await session.writeFile({ path: "a.bin", contents: new Uint8Array(1000) });
    const r = await session.readFile({ path: "a.bin" });
    expect(r.contents.length).toBe(1000);
    await session.runCommand({ command_id: "c", program: "echo", args: [CANARY], env: [["SECRET", CANARY]] });
    await session.readFile({ path: "missing.txt" }).catch(() => {});
    const h = await session.startCommand!({ command_id: "s", program: "printf", args: ["12345"] });
    for await (const _ of h.output) void _;
    await h.wait();
    await session.close();
    const ops = events.map((e) => `${e.operation}:${e.outcome}`);
    expect(ops).toEqual([
      "createSession:ok",
      "writeFile:ok",
      "readFile:ok",
      "runCommand:ok",
      "readFile:error",
      "startCommand:ok",
      "command:ok",
      "close:ok",
    ]);
    for (const e of events) expect(RunnerOperationEventSchema.parse(e)).toEqual(e);
    expect(events.find((e) => e.operation === "writeFile")!.bytes_out).toBe(1000);
    expect(events.find((e) => e.operation === "readFile" && e.outcome === "ok")!.bytes_in).toBe(1000);
    expect(events.find((e) => e.outcome === "error")!.error_code).toBe("not_found");
    expect(events.find((e) => e.operation === "command")!.bytes_in).toBe(5);
    expect(JSON.stringify(events)).not.toContain(CANARY);
  });

  it("publishes limits that agree with what the provider does", async () => {
    const provider = createLocalProvider();
    const limits = RunnerLimitsSchema.parse(provider.limits());
    expect(limits.provider_id).toBe(provider.id);
    const session = await createLocalProvider().createSession({
      id: "l",
      provider_id: "unix-local",
      config: {},
      default_manifest: { entries: [], mounts: [] },
    });
    expect(limits.streaming === "native").toBe(typeof session.startCommand === "function");
    expect(limits.cancellation !== "none").toBe(createLocalProvider().capabilities().cancellation);
    await session.close();
  });
});
