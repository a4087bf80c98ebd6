import { z } from "zod";

/**
 * The frames of a command stream (`POST …/commands/stream`, `GET …/commands/{id}/stream`) and of an artifact
 * export with progress (`POST …/artifacts`, `Accept: application/x-ndjson`): one JSON object per line (NDJSON). The server writes them through `frame()`, the client decodes them with `decodeFrame()`: one
 * schema for both ends.
 */
const Offsets = z.object({ stdout: z.number().int().nonnegative(), stderr: z.number().int().nonnegative() });

export const StreamFrameSchema = z.discriminatedUnion("type", [
  z.object({
    type: z.literal("started"),
    command_id: z.string(),
    /** The command outlives this connection and can be attached again. */
    attachable: z.boolean(),
    /** Present when the command's stdin is open: where the first write starts (0). */
    stdin_offset: z.number().int().nonnegative().optional(),
  }),
  z.object({
    type: z.literal("attached"),
    command_id: z.string(),
    /** Bytes of each stream before the replay (dropped from the front of the server's log); null: unknown. */
    offset: Offsets.nullable(),
    /** Bytes of stdin the command has taken: where this client's next write starts. */
    stdin_offset: z.number().int().nonnegative().optional(),
  }),
  z.object({ type: z.literal("stdout"), data: z.string() }),
  z.object({ type: z.literal("stderr"), data: z.string() }),
  /** The command's result (the wire `RunnerCommandResult`, decoded by its codec). */
  z.object({ type: z.literal("result"), result: z.unknown() }),
  z.object({
    type: z.literal("error"),
    status: z.number().int().optional(),
    error: z.object({
      code: z.string(),
      message: z.string(),
      capability: z.string().optional(),
      path: z.string().optional(),
      command_id: z.string().optional(),
      retryable: z.boolean().optional(),
    }),
  }),
  /** An artifact export's progress (`POST …/artifacts` with `Accept: application/x-ndjson`). */
  z.object({
    type: z.literal("progress"),
    phase: z.enum(["preparing", "uploading", "verifying", "done"]),
    bytes: z.number().int().nonnegative(),
    total: z.number().int().nonnegative().optional(),
  }),
]);
export type StreamFrame = z.infer<typeof StreamFrameSchema>;

/** A frame as the server writes it (typed: a frame the schema would refuse does not compile). */
export const frame = (f: StreamFrame): StreamFrame => f;

/** One line of a command stream, decoded and checked; null for a line that is not a frame this client knows. */
export function decodeFrame(line: string): StreamFrame | null {
  let raw: unknown;
  try {
    raw = JSON.parse(line);
  } catch {
    return null;
  }
  const parsed = StreamFrameSchema.safeParse(raw);
  return parsed.success ? parsed.data : null;
}
