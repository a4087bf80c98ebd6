import { execFile } from "node:child_process";
import { promisify } from "node:util";

const run = promisify(execFile);

/** Bind-mounts `source` at `target`, read-only when asked (a read-only bind holds even for root). */
export async function bindMount(source: string, target: string, readOnly: boolean): Promise<void> {
  await run("mount", ["--bind", source, target]);
  if (readOnly) {
    try {
      await run("mount", ["-o", "remount,bind,ro", target]);
    } catch (error) {
      await unmount(target);
      throw error;
    }
  }
}

export async function unmount(target: string): Promise<void> {
  try {
    await run("umount", [target]);
  } catch {
    await run("umount", ["-l", target]).catch(() => {});
  }
}
