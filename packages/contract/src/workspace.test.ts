import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { PathOutsideWorkspaceError } from "./errors/path-outside-workspace-error.js";
import type { RemoteRunnerSession } from "./runner-interfaces.js";
import { confinePath, isWithin, normalizePosix, RemoteWorkspace } from "./workspace.js";

const root = "/work/ws";
const refused = (fn: () => unknown) => {
  try {
    fn();
  } catch (e) {
    return PathOutsideWorkspaceError.isInstance(e);
  }
  return false;
};

describe("confinePath", () => {
  it("resolves relative paths under the root and keeps absolute ones inside", () => {
    expect(confinePath("a/b.txt", { root, access: "write" })).toBe("/work/ws/a/b.txt");
    expect(confinePath("./a//b/../c", { root, access: "write" })).toBe("/work/ws/a/c");
    expect(confinePath("/work/ws/x", { root, access: "write" })).toBe("/work/ws/x");
    expect(confinePath(".", { root, access: "cwd" })).toBe("/work/ws");
  });

  it("refuses .., outside absolutes, NUL and empty paths with a typed error", () => {
    for (const p of ["../etc/passwd", "a/../../x", "/etc/passwd", "/work/wsx/y", "/work", "a\u0000b", ""]) {
      expect(
        refused(() => confinePath(p, { root, access: "write" })),
        p,
      ).toBe(true);
    }
  });

  it("lets reads, and only reads, resolve under read roots", () => {
    expect(confinePath("/opt/data/f", { root, readRoots: ["/opt/data"], access: "read" })).toBe(
      "/opt/data/f",
    );
    expect(
      refused(() => confinePath("/opt/data/f", { root, readRoots: ["/opt/data"], access: "write" })),
    ).toBe(true);
    expect(refused(() => confinePath("/opt/data/f", { root, readRoots: ["/opt/data"], access: "cwd" }))).toBe(
      true,
    );
  });

  it("never returns a path outside the root for any input (property)", () => {
    const seg = fc.oneof(
      fc.constantFrom("..", ".", "", "a", "ws", "work", "%2e%2e", "..."),
      fc.string({ maxLength: 6 }),
    );
    let cases = 0;
    fc.assert(
      fc.property(fc.array(seg, { maxLength: 8 }), fc.boolean(), (segs, abs) => {
        cases++;
        const p = (abs ? "/" : "") + segs.join("/");
        try {
          const out = confinePath(p, { root, access: "write" });
          expect(isWithin(out, root)).toBe(true);
          expect(out).toBe(normalizePosix(out));
        } catch (e) {
          expect(PathOutsideWorkspaceError.isInstance(e)).toBe(true);
        }
      }),
      { numRuns: 2000 },
    );
    expect(cases).toBe(2000);
  });
});

describe("RemoteWorkspace", () => {
  it("confines before the session sees anything", async () => {
    const seen: string[] = [];
    const session = {
      readFile: async (r: { path: string }) => {
        seen.push(`read ${r.path}`);
        return { path: r.path, contents: new Uint8Array([1]) };
      },
      writeFile: async (r: { path: string }) => {
        seen.push(`write ${r.path}`);
      },
      runCommand: async (r: { cwd?: string | null; command_id: string }) => {
        seen.push(`run ${r.cwd}`);
        return { command_id: r.command_id, exit_code: 0, stdout: "", stderr: "" };
      },
    } as unknown as RemoteRunnerSession;
    const ws = new RemoteWorkspace({ session, root, readRoots: ["/ro"] });
    await ws.writeFile("out/a", new Uint8Array([1]));
    await ws.readFile("/ro/x");
    await ws.runCommand({ command_id: "c", program: "true" });
    await expect(ws.writeFile("../escape", new Uint8Array())).rejects.toThrow(/refused/);
    await expect(ws.runCommand({ command_id: "c", program: "true", cwd: "/ro" })).rejects.toThrow(
      /working directory/,
    );
    expect(seen).toEqual(["write /work/ws/out/a", "read /ro/x", "run /work/ws"]);
  });
});

describe("sandboxViewPath", () => {
  it("resolves relative paths against the workspace, keeps absolute ones, never climbs above /", async () => {
    const { sandboxViewPath } = await import("./workspace.js");
    expect(sandboxViewPath("a/b/", "/w")).toBe("/w/a/b");
    expect(sandboxViewPath("/tmp/x", "/w")).toBe("/tmp/x");
    expect(sandboxViewPath("../../../etc/hostname", "/w")).toBe("/etc/hostname");
    expect(sandboxViewPath("/", "/w")).toBe("/");
    for (const bad of ["", "a\u0000b"]) expect(() => sandboxViewPath(bad, "/w")).toThrow(/path/);
  });
});
