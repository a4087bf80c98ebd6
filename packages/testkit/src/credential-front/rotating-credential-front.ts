import { createServer, request } from "node:http";
import type { AddressInfo } from "node:net";
import { onTestFinished } from "vitest";

export interface RotatingCredentialFrontOptions {
  /** The API the front stands before (a stand-in's base URL); its path is kept in the front's `url`. */
  target: string;
  /** The request header that carries the credential, e.g. `authorization` or `x-api-key`. */
  header: string;
  /** Written before the credential in that header, e.g. `Bearer` (`Bearer <token>`); none by default. */
  scheme?: string;
  /** The credential the front accepts at first. */
  initial: string;
  /** The credential the target takes: an accepted request is forwarded with it instead. */
  targetCredential: string;
  /** The answer to a refused credential: status (default 401) and JSON body, as the real API words it. */
  refusal: { status?: number; body: unknown };
}

/** One request that reached the front (the credential itself is never kept). */
export interface RotatingCredentialRequest {
  method: string;
  path: string;
  accepted: boolean;
}

/**
 * A credential rotation in front of a stand-in whose own credential is fixed: a proxy on 127.0.0.1 that
 * accepts only the current credential, refuses any other as the real API does, and forwards accepted
 * requests with the target's credential.
 */
export interface RotatingCredentialFront {
  /** The target's URL with the front's origin: point the client here. */
  readonly url: string;
  /** The credential accepted now. */
  readonly accepted: string;
  /** From now on accept `next` only (the rotation at the credential store's side). */
  rotate(next: string): void;
  /** Every request that reached the front, in order. */
  readonly requests: readonly RotatingCredentialRequest[];
  /** How many requests were refused. */
  readonly refused: number;
  /** Called on each refusal before it is answered (e.g. to hand out the new credential only now). */
  onRefuse?: () => void;
  /** Refusals wait until this many are waiting, then are answered together (default 1: at once). */
  holdRefusals: number;
  /** Closes the front; also done when the test that started it finishes. */
  stop(): Promise<void>;
}

/**
 * Starts a {@link RotatingCredentialFront}. Started inside a test, it is stopped when that test finishes,
 * passed or failed; started elsewhere (a hook), the caller stops it.
 */
export async function startRotatingCredentialFront(
  options: RotatingCredentialFrontOptions,
): Promise<RotatingCredentialFront> {
  const to = new URL(options.target);
  const header = options.header.toLowerCase();
  const written = (credential: string) => (options.scheme ? `${options.scheme} ${credential}` : credential);
  const refusal = JSON.stringify(options.refusal.body);
  let accepted = options.initial;
  const requests: RotatingCredentialRequest[] = [];
  const waiting: Array<() => void> = [];
  const server = createServer((req, res) => {
    const ok = req.headers[header] === written(accepted);
    requests.push({ method: req.method ?? "", path: req.url ?? "", accepted: ok });
    if (!ok) {
      front.onRefuse?.();
      req.resume();
      waiting.push(() =>
        res.writeHead(options.refusal.status ?? 401, { "content-type": "application/json" }).end(refusal),
      );
      if (waiting.length >= front.holdRefusals) for (const answer of waiting.splice(0)) answer();
      return;
    }
    const up = request(
      {
        host: to.hostname,
        port: to.port,
        method: req.method,
        path: req.url,
        headers: { ...req.headers, host: to.host, [header]: written(options.targetCredential) },
      },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    up.on("error", () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const base = new URL(options.target);
  base.host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  let stopped: Promise<void> | undefined;
  const front: RotatingCredentialFront = {
    url: base.href.replace(/\/$/, ""),
    get accepted() {
      return accepted;
    },
    rotate(next) {
      accepted = next;
    },
    requests,
    get refused() {
      return requests.filter((r) => !r.accepted).length;
    },
    holdRefusals: 1,
    stop() {
      stopped ??= new Promise<void>((resolve) => {
        for (const answer of waiting.splice(0)) answer();
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return stopped;
    },
  };
  try {
    onTestFinished(() => front.stop());
  } catch {
    // Not inside a test (a hook or a script): the caller stops the front.
  }
  return front;
}
