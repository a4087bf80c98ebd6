import type { IncomingMessage, ServerResponse } from "node:http";

/** An error the stand-in answers as Fly does: `{"error": message, "status": code}` (fly-go flaps/flaps_error.go). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    /** Fly's `status` field: "unknown" unless a documented code applies ("insufficient_capacity"). */
    readonly code = "unknown",
    readonly retryAfterS?: number,
  ) {
    super(message);
  }
}

/** A request's JSON body (`{}` when empty; 400 when it is not JSON). */
export async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  const text = Buffer.concat(chunks).toString("utf8");
  if (!text) return {};
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw new ApiError(400, "invalid JSON body");
  }
}

/** A JSON answer (nothing once the response has started or the client is gone). */
export const send = (
  res: ServerResponse,
  status: number,
  body?: unknown,
  headers: Record<string, string> = {},
) => {
  if (res.headersSent || res.destroyed) return;
  if (body === undefined) {
    res.writeHead(status, headers).end();
    return;
  }
  const text = JSON.stringify(body);
  res
    .writeHead(status, {
      ...headers,
      "content-type": "application/json",
      "content-length": String(Buffer.byteLength(text)),
    })
    .end(text);
};

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
