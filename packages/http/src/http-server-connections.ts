import type { IncomingMessage, ServerResponse } from "node:http";
import type { Socket } from "node:net";

/**
 * Open connections, oldest first, with their requests in flight. At the cap, a new connection evicts the oldest
 * one that has no request in flight (headers never finished, or idle keep-alive) rather than being refused:
 * connections that never finish their headers cannot lock out clients that do.
 */
export function connectionLimiter(maxConnections: number) {
  const open = new Map<Socket, { busy: number }>();
  return {
    onConnection(socket: Socket): void {
      if (open.size >= maxConnections) {
        for (const [s, st] of open)
          if (st.busy === 0) {
            open.delete(s);
            s.destroy();
            break;
          }
        if (open.size >= maxConnections) {
          socket.destroy();
          return;
        }
      }
      open.set(socket, { busy: 0 });
      socket.on("close", () => open.delete(socket));
    },
    /** Counts a request in flight on its connection until its answer is done. */
    track(req: IncomingMessage, res: ServerResponse): void {
      const conn = open.get(req.socket as Socket);
      if (conn) {
        conn.busy++;
        res.on("close", () => conn.busy--);
      }
    },
  };
}
