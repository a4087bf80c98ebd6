import type { IncomingMessage, ServerResponse } from "node:http";

/** One fault switch of a stand-in: applies to the next `times` matching requests. */
export interface FaultSpec {
  /** Answer with this status (429, 500, 502, 503, …) instead of serving. */
  status?: number;
  /** `Retry-After` seconds sent with the status. */
  retryAfterSeconds?: number;
  /** Delay before serving (slow responses). */
  delayMs?: number;
  /** Destroy the socket without an answer (connection reset). */
  resetConnection?: boolean;
  /** How many requests the fault applies to (default 1). */
  times?: number;
  /** Only requests whose `METHOD /path` matches. */
  match?: RegExp;
}

export interface FaultSwitch {
  set(spec: FaultSpec): void;
  clear(): void;
  /** How many faults were injected so far. */
  readonly injected: number;
}

export function createFaultSwitch(errorBody: (status: number) => string): FaultSwitch & {
  /** Applies a pending fault; returns true when the request was answered (or dropped) by the fault. */
  apply(req: IncomingMessage, res: ServerResponse): Promise<boolean>;
} {
  let active: (FaultSpec & { left: number })[] = [];
  let injected = 0;
  return {
    set(spec) {
      active.push({ ...spec, left: spec.times ?? 1 });
    },
    clear() {
      active = [];
    },
    get injected() {
      return injected;
    },
    async apply(req, res) {
      const key = `${req.method} ${(req.url ?? "").split("?")[0]}`;
      const f = active.find((a) => a.left > 0 && (!a.match || a.match.test(key)));
      if (!f) return false;
      f.left -= 1;
      injected += 1;
      if (f.delayMs) await new Promise((r) => setTimeout(r, f.delayMs));
      if (f.resetConnection) {
        req.socket.destroy();
        return true;
      }
      if (f.status) {
        const headers: Record<string, string> = { "content-type": "application/json" };
        if (f.retryAfterSeconds !== undefined) headers["retry-after"] = String(f.retryAfterSeconds);
        res.writeHead(f.status, headers);
        res.end(errorBody(f.status));
        return true;
      }
      return false;
    },
  };
}

/**
 * A stand-in's request listener: a pending fault first, then `route`; a failure of `route` is answered by
 * `answerError` (in the stand-in's own error shape) once what the client is still sending has been drained.
 */
export function serveWithFaults(
  faults: { apply(req: IncomingMessage, res: ServerResponse): Promise<boolean> },
  route: (req: IncomingMessage, res: ServerResponse) => Promise<unknown>,
  answerError: (error: unknown, res: ServerResponse) => void,
): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    void (async () => {
      if (await faults.apply(req, res)) return;
      try {
        await route(req, res);
      } catch (error) {
        req.resume();
        answerError(error, res);
      }
    })();
  };
}
