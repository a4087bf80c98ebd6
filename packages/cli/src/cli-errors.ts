import { CancelledError, MissingDependencyError, RunnerError } from "@roder/runner-contract";
import { CliError, EXIT } from "./cli-base.js";
import { missingWith } from "./missing-deps.js";
import { StateRefusedError } from "./state-check.js";
import { describeConnectionError, describeFsError } from "./sys-errors.js";

/** Any error as the CLI reports it: one line, a hint, the documented exit code. */
export function mapError(error: unknown): CliError {
  if (error instanceof CliError) return error;
  if (error instanceof StateRefusedError) return new CliError(error.message, EXIT.config);
  if (CancelledError.isInstance(error)) return new CliError("interrupted", EXIT.interrupted);
  if (MissingDependencyError.isInstance(error)) {
    // Name every missing package of the group at once: one install line, not one per try.
    const all = missingWith(error.dependency);
    const purpose = error.message.split(" needs '")[0];
    return new CliError(
      `${purpose} needs ${all.join(", ")}, ${all.length > 1 ? "which are" : "which is"} not installed`,
      EXIT.config,
      `npm install ${all.join(" ")}`,
    );
  }
  const connection = describeConnectionError(error);
  if (connection) return new CliError(connection, EXIT.provider);
  if (RunnerError.isInstance(error)) {
    const config = [
      "invalid_destination_config",
      "secret_in_config",
      "missing_secret",
      "invalid_secret",
      "wire_decode",
      "invalid_mount_uri",
      "unknown_provider",
      "path_outside_workspace",
      "invalid_request",
    ].includes(error.code);
    if (error.code === "unknown_provider") {
      const id = /'([^']+)'/.exec(error.message)?.[1];
      const pkg = id === "e2b" ? "@roder/runner-e2b" : undefined;
      return new CliError(
        error.message,
        EXIT.config,
        pkg
          ? `npm install ${missingWith(pkg).join(" ")}`
          : "install the provider package, e.g. npm install @roder/runner-e2b",
      );
    }
    const hint = error.code === "missing_secret" ? "set the variables named above" : undefined;
    return new CliError(error.message, config ? EXIT.config : EXIT.provider, hint);
  }
  const fs = describeFsError(error);
  if (fs) return new CliError(fs, EXIT.failure);
  return new CliError((error as Error)?.message ?? String(error), EXIT.failure);
}
