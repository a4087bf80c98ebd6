import { hasCode, RunnerError, type RunnerErrorOptions } from "./runner-error.js";

/** A wire value that does not decode as the named Rust type. `path` is the JSON path of the offending field. */
export class WireDecodeError extends RunnerError {
  readonly typeName: string;
  readonly path: ReadonlyArray<string | number>;
  /** `data` (wrong type / missing field), `syntax` (not JSON) or `eof` (truncated), as serde_json categorises. */
  readonly category: "data" | "syntax" | "eof";

  constructor(
    args: {
      typeName: string;
      path?: ReadonlyArray<string | number>;
      message: string;
      category?: "data" | "syntax" | "eof";
    },
    options?: RunnerErrorOptions,
  ) {
    const where = args.path && args.path.length > 0 ? ` at ${formatPath(args.path)}` : "";
    super("wire_decode", `invalid ${args.typeName}${where}: ${args.message}`, options);
    this.name = "WireDecodeError";
    this.typeName = args.typeName;
    this.path = args.path ?? [];
    this.category = args.category ?? "data";
  }

  static override isInstance(error: unknown): error is WireDecodeError {
    return hasCode(error, "wire_decode");
  }
}

export function formatPath(path: ReadonlyArray<string | number>): string {
  return path.map((p, i) => (typeof p === "number" ? `[${p}]` : i === 0 ? p : `.${p}`)).join("");
}
