import { execFileSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from "node:fs";
import { fileURLToPath } from "node:url";

/**
 * The stand-in's agent image: a copy of this repository's built packages (each `dist`, `package.json` and its
 * `node_modules` links, third-party modules from the repository's store), so that a machine runs
 * `node <image>/packages/cli/dist/bin.js serve` — the built `roder-runner` — and a rebuild of the working tree
 * while the tests run cannot pull the files from under it. Under /var/tmp: a machine sees it read-only at the
 * same path (the stand-in's `imageDirs`); its own /tmp is its own.
 */
export interface AgentImage {
  dir: string;
  /** What a machine must see (read-only): the copy and the repository's module store it links to. */
  dirs: string[];
  /** `agent_command` for the destination config. */
  command: string[];
  remove(): void;
}

const REPO = fileURLToPath(new URL("../../../..", import.meta.url)).replace(/\/+$/, "");

export async function makeAgentImage(): Promise<AgentImage> {
  for (let attempt = 0; ; attempt++) {
    const dir = mkdtempSync("/var/tmp/roder-fly-agent-image-");
    try {
      symlinkSync(`${REPO}/node_modules`, `${dir}/node_modules`);
      for (const pkg of readdirSync(`${REPO}/packages`)) {
        const from = `${REPO}/packages/${pkg}`;
        if (!existsSync(`${from}/package.json`)) continue;
        mkdirSync(`${dir}/packages/${pkg}`, { recursive: true });
        cpSync(`${from}/package.json`, `${dir}/packages/${pkg}/package.json`);
        if (existsSync(`${from}/dist`))
          cpSync(`${from}/dist`, `${dir}/packages/${pkg}/dist`, { recursive: true });
        // Links only (relative ones to the sibling packages of the copy, the others to the store).
        if (existsSync(`${from}/node_modules`))
          cpSync(`${from}/node_modules`, `${dir}/packages/${pkg}/node_modules`, {
            recursive: true,
            verbatimSymlinks: true,
            filter: (src) => !src.includes("/.bin") && !src.includes("/.vite"),
          });
      }
      // Whole: the CLI and what `serve` loads import cleanly from the copy.
      execFileSync(
        process.execPath,
        [
          "--input-type=module",
          "-e",
          `for (const p of ["cli","http","local","contract","storage"]) await import("${dir}/packages/" + p + "/dist/index.js");`,
        ],
        { stdio: "pipe", timeout: 60_000 },
      );
      return {
        dir,
        dirs: [dir, `${REPO}/node_modules`],
        command: [process.execPath, `${dir}/packages/cli/dist/bin.js`],
        remove: () => rmSync(dir, { recursive: true, force: true }),
      };
    } catch (error) {
      rmSync(dir, { recursive: true, force: true });
      // A rebuild was under way (a dist half written): try again once it is done.
      if (attempt >= 20) throw error;
      await new Promise((r) => setTimeout(r, 3000));
    }
  }
}
