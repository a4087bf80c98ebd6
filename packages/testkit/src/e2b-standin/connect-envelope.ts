/** Connect protocol (JSON codec) framing: 1 flag byte, 4-byte big-endian length, payload. */
export const END_STREAM = 0x02;

export function envelope(payload: unknown, flags = 0): Buffer {
  const body = Buffer.from(JSON.stringify(payload));
  const head = Buffer.alloc(5);
  head.writeUInt8(flags, 0);
  head.writeUInt32BE(body.length, 1);
  return Buffer.concat([head, body]);
}

/** The first enveloped message of a streaming request body. */
export function readFirstEnvelope(body: Buffer): unknown {
  if (body.length < 5) throw new Error("short envelope");
  const len = body.readUInt32BE(1);
  return JSON.parse(body.subarray(5, 5 + len).toString("utf8"));
}
