import { readFileSync } from "node:fs";
import { codecs, type RunnerDestination } from "@roder/runner-contract";
import { parse as parseToml } from "smol-toml";
import { CliError, EXIT } from "./cli-base.js";

const BUILTIN: Record<string, RunnerDestination> = {
  local: {
    id: "local",
    provider_id: "unix-local",
    config: {},
    default_manifest: { entries: [], mounts: [] },
  },
};

export function loadDestination(ref: string): RunnerDestination {
  if (BUILTIN[ref]) return BUILTIN[ref]!;
  let text: string;
  try {
    text = readFileSync(ref, "utf8");
  } catch {
    throw new CliError(
      `destination '${ref}' is neither a file nor a built-in id`,
      EXIT.config,
      `built-in ids: ${Object.keys(BUILTIN).join(", ")}; or pass a .json/.toml file`,
    );
  }
  let raw: unknown;
  try {
    raw = ref.endsWith(".toml") ? parseToml(text) : JSON.parse(text);
  } catch (error) {
    throw new CliError(
      `destination file ${ref} is not valid ${ref.endsWith(".toml") ? "TOML" : "JSON"}: ${(error as Error).message.split("\n")[0]}`,
      EXIT.config,
    );
  }
  try {
    return codecs.RunnerDestination.parse(raw);
  } catch (error) {
    throw new CliError(
      `destination file ${ref}: ${(error as Error).message}`,
      EXIT.config,
      "see the RunnerDestination fields: id, provider_id, config, default_manifest",
    );
  }
}
