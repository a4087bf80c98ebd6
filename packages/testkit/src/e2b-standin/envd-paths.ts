import { posix } from "node:path";

/**
 * envd's users and paths (e2b-dev/infra `envd/internal/permissions`): a request acts as a user (RPC: the
 * `Authorization: Basic base64(user:)` header; `/files`: the `username` query), `user` by default. A relative
 * path or `~` is resolved against that user's home, so every answer carries an absolute path.
 */
export interface EnvdUser {
  name: string;
  uid: number;
  home: string;
}

/** The users of E2B's base image. Inside the stand-in's sandbox every command runs as uid 1000 (`user`). */
export const ENVD_USERS: Record<string, EnvdUser> = {
  user: { name: "user", uid: 1000, home: "/home/user" },
  root: { name: "root", uid: 0, home: "/root" },
};

/** Owner and group names as E2B's image has them (uid 1000 is `user` there, whatever this host calls it). */
export function ownerName(id: number): string {
  if (id === 0) return "root";
  if (id === 1000) return "user";
  return String(id);
}

/** envd's answer for an unknown user (401, as its `GetUser`). */
export class UnknownUserError extends Error {
  constructor(readonly username: string) {
    super(`error looking up user '${username}': user: unknown user ${username}`);
  }
}

export function lookupUser(name: string | undefined | null): EnvdUser {
  const n = name || "user";
  const u = ENVD_USERS[n];
  if (!u) throw new UnknownUserError(n);
  return u;
}

/** The user of an RPC request: `Authorization: Basic base64("<user>:")`, else the default user. */
export function rpcUser(authorization: string | undefined): EnvdUser {
  const m = /^Basic\s+(\S+)$/i.exec(authorization ?? "");
  if (!m) return lookupUser(undefined);
  const decoded = Buffer.from(m[1]!, "base64").toString("utf8");
  return lookupUser(decoded.split(":")[0]);
}

/** `permissions.ExpandAndResolve`: `~` → home, relative → under home, cleaned (`..` resolved). */
export function resolvePath(path: string, user: EnvdUser): string {
  let p = path;
  if (p.startsWith("~")) {
    if (p.length > 1 && p[1] !== "/") throw new Error("cannot expand user-specific home dir");
    p = posix.join(user.home, p.slice(1));
  }
  if (posix.isAbsolute(p)) return p;
  return posix.resolve(user.home, p);
}
