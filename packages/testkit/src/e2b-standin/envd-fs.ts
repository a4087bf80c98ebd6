import { randomBytes } from "node:crypto";
import type { RemoteRunnerSession, RunnerCommandHandle } from "@roder/runner-contract";
import { ownerName } from "./envd-paths.js";

/**
 * envd's filesystem service (e2b-dev/infra `envd/internal/services/filesystem`, `shared/pkg/filesystem`), done
 * inside the sandbox by a small Python program run as one of the session's commands, so it sees the sandbox's
 * own view (its users, `/tmp`, symlinks, xattrs) as envd does: `lstat` entries with Go's mode string, symlink
 * targets resolved as `filepath.EvalSymlinks`, `user.e2b.*` xattrs as metadata, `ListDir` walks to a depth,
 * `MakeDir`'s already-exists, `Move` making the destination's parents, `WatchDir` through inotify, and an
 * upload's last step: a file staged in `/tmp` is written over its destination in place (as envd's
 * `O_TRUNC` open: watchers see a write, not a rename) and the upload's metadata set.
 * Paths arrive absolute (resolved by the caller).
 */
const HELPER = String.raw`
import os, sys, json, stat as S
def gomode(m):
    s = ''
    if S.S_ISDIR(m): s += 'd'
    if S.S_ISLNK(m): s += 'L'
    if S.S_ISBLK(m) or S.S_ISCHR(m): s += 'D'
    if S.S_ISFIFO(m): s += 'p'
    if S.S_ISSOCK(m): s += 'S'
    if m & S.S_ISUID: s += 'u'
    if m & S.S_ISGID: s += 'g'
    if S.S_ISCHR(m): s += 'c'
    if m & S.S_ISVTX: s += 't'
    if not s: s = '-'
    return s + ''.join(c if m & (1 << (8 - i)) else '-' for i, c in enumerate('rwxrwxrwx'))
def ftype(m):
    if S.S_ISREG(m): return 'FILE_TYPE_FILE'
    if S.S_ISDIR(m): return 'FILE_TYPE_DIRECTORY'
    if S.S_ISLNK(m): return 'FILE_TYPE_SYMLINK'
    return 'FILE_TYPE_UNSPECIFIED'
P = 'user.e2b.'
def readmeta(p):
    out = {}
    try:
        for k in os.listxattr(p):
            if k.startswith(P): out[k[len(P):]] = os.getxattr(p, k).decode('utf-8', 'replace')
    except OSError: pass
    return out
def entry(p):
    st = os.lstat(p)
    e = {'name': os.path.basename(p) or p, 'path': p, 'size': st.st_size, 'permissions': gomode(st.st_mode),
         'uid': st.st_uid, 'gid': st.st_gid, 'mtimeNs': str(st.st_mtime_ns)}
    if S.S_ISLNK(st.st_mode):
        try: t = os.path.realpath(p, strict=True)
        except OSError: t = p
        e['symlinkTarget'] = t
        try:
            ts = os.stat(t); e['type'] = ftype(ts.st_mode); e['mode'] = ts.st_mode & 0o777
        except OSError: e['type'] = 'FILE_TYPE_UNSPECIFIED'; e['mode'] = 0
    else:
        e['type'] = ftype(st.st_mode); e['mode'] = st.st_mode & 0o777
    e['metadata'] = readmeta(p)
    return e
class Err(Exception):
    def __init__(self, code, msg): self.code = code; self.msg = msg
def ensure_dirs(p):
    parts = []
    while p not in ('/', ''):
        parts.append(p); p = os.path.dirname(p)
    for d in reversed(parts):
        try: st = os.stat(d)
        except FileNotFoundError:
            try: os.mkdir(d, 0o755)
            except FileExistsError: pass
            except OSError as x: raise Err('internal', 'failed to create directory: %s' % x)
            continue
        except OSError as x: raise Err('internal', 'failed to stat directory: %s' % x)
        if not S.S_ISDIR(st.st_mode): raise Err('internal', 'path is a file: %s' % d)
def stat(r):
    try: return {'entry': entry(r['path'])}
    except FileNotFoundError as x: raise Err('not_found', 'file not found: %s' % x)
def listdir(r):
    p, depth = r['path'], r['depth']
    try: real = os.path.realpath(p, strict=True)
    except FileNotFoundError as x: raise Err('not_found', 'path not found: %s' % x)
    except OSError as x: raise Err('internal', 'error resolving symlink: %s' % x)
    if not os.path.isdir(real): raise Err('invalid_argument', 'path is not a directory: %s' % real)
    out = []
    def walk(d, rel, level):
        try: names = sorted(os.listdir(d))
        except OSError as x: raise Err('internal', 'error reading directory %s: %s' % (real, x))
        for n in names:
            full = os.path.join(d, n)
            try: e = entry(full)
            except FileNotFoundError: continue
            e['path'] = os.path.join(p, rel, n) if rel else os.path.join(p, n)
            out.append(e)
            if level < depth and os.path.isdir(full) and not os.path.islink(full):
                walk(full, os.path.join(rel, n) if rel else n, level + 1)
    walk(real, '', 1)
    return {'entries': out}
def makedir(r):
    p = r['path']
    try: st = os.stat(p)
    except FileNotFoundError: st = None
    if st is not None:
        if S.S_ISDIR(st.st_mode): raise Err('already_exists', 'directory already exists: %s' % p)
        raise Err('invalid_argument', 'path already exists but it is not a directory: %s' % p)
    ensure_dirs(p)
    return {'entry': entry(p)}
def move(r):
    src, dst = r['source'], r['destination']
    ensure_dirs(os.path.dirname(dst))
    try: os.rename(src, dst)
    except FileNotFoundError as x: raise Err('not_found', 'source file not found: %s' % x)
    except OSError as x: raise Err('internal', 'error renaming: %s' % x)
    return {'entry': entry(dst)}
def remove(r):
    p = r['path']
    try:
        if os.path.isdir(p) and not os.path.islink(p):
            import shutil; shutil.rmtree(p)
        else: os.remove(p)
    except FileNotFoundError: pass
    except OSError as x: raise Err('internal', 'error removing file or directory: %s' % x)
    return {}
def place(r):
    import shutil
    for f in r['files']:
        t, p = f['staged'], f['path']
        if t is None: continue
        try:
            ensure_dirs(os.path.dirname(p))
            if os.path.isdir(p): raise Err('invalid_argument', 'path is a directory: %s' % p)
            try: dst = open(p, 'wb')
            except OSError as x: raise Err('internal', 'error opening file: %s' % x)
            with open(t, 'rb') as src, dst: shutil.copyfileobj(src, dst, 1 << 20)
        finally:
            try: os.remove(t)
            except OSError: pass
    return setmeta({'paths': [f['path'] for f in r['files']], 'metadata': r['metadata']})
def setmeta(r):
    out = []
    for p in r['paths']:
        try:
            for k in os.listxattr(p):
                if k.startswith(P): os.removexattr(p, k)
            for k, v in r['metadata'].items(): os.setxattr(p, P + k, v.encode())
        except OSError: pass
        out.append(readmeta(p))
    return {'metadata': out}
def watch(r):
    import ctypes, struct
    libc = ctypes.CDLL(None, use_errno=True)
    root, rec, inc = r['path'], r['recursive'], r['includeEntry']
    try: st = os.stat(root)
    except FileNotFoundError as x: raise Err('not_found', 'path %s not found: %s' % (root, x))
    if not S.S_ISDIR(st.st_mode): raise Err('invalid_argument', 'path %s not a directory' % root)
    fd = libc.inotify_init1(os.O_CLOEXEC)
    if fd < 0: raise Err('internal', 'error creating watcher')
    CR, MOD, ATT, MF, MT, DEL, DS, MS, ISDIR = 0x100, 0x2, 0x4, 0x40, 0x80, 0x200, 0x400, 0x800, 0x40000000
    wds = {}
    def add(d):
        wd = libc.inotify_add_watch(fd, os.fsencode(d), CR | MOD | ATT | MF | MT | DEL | DS | MS)
        if wd >= 0: wds[wd] = d
        if rec:
            for dp, dns, _ in os.walk(d):
                for n in dns:
                    w = libc.inotify_add_watch(fd, os.fsencode(os.path.join(dp, n)), CR | MOD | ATT | MF | MT | DEL | DS | MS)
                    if w >= 0: wds[w] = os.path.join(dp, n)
    add(root)
    print(json.dumps({'start': {}}), flush=True)
    while True:
        buf = os.read(fd, 65536); i = 0
        while i < len(buf):
            wd, mask, _, ln = struct.unpack_from('iIII', buf, i)
            name = os.fsdecode(buf[i + 16:i + 16 + ln].rstrip(b'\0')); i += 16 + ln
            d = wds.get(wd)
            if d is None: continue
            full = os.path.join(d, name) if name else d
            ops = []
            if mask & (CR | MT): ops.append('EVENT_TYPE_CREATE')
            if mask & (MS | MF): ops.append('EVENT_TYPE_RENAME')
            if mask & ATT: ops.append('EVENT_TYPE_CHMOD')
            if mask & MOD: ops.append('EVENT_TYPE_WRITE')
            if mask & (DEL | DS): ops.append('EVENT_TYPE_REMOVE')
            if rec and mask & ISDIR and mask & (CR | MT): add(full)
            for op in ops:
                ev = {'name': os.path.relpath(full, root), 'type': op}
                if inc and op in ('EVENT_TYPE_CREATE', 'EVENT_TYPE_WRITE', 'EVENT_TYPE_CHMOD'):
                    try: ev['entry'] = entry(full)
                    except OSError: pass
                print(json.dumps({'filesystem': ev}), flush=True)
r = json.loads(os.environ['E2B_STANDIN_FS'])
try: print(json.dumps({'ok': globals()[r['op']](r)}))
except Err as x: print(json.dumps({'err': {'code': x.code, 'message': x.msg}}))
`;

/** An envd error of the filesystem service (Connect code and message). */
export class EnvdFsError extends Error {
  constructor(
    readonly connectCode: string,
    message: string,
  ) {
    super(message);
  }
}

interface RawEntry {
  name: string;
  path: string;
  size: number;
  permissions: string;
  uid: number;
  gid: number;
  mtimeNs: string;
  type: string;
  mode: number;
  symlinkTarget?: string;
  metadata: Record<string, string>;
}

/** RFC 3339 with nanoseconds, as protobuf's JSON Timestamp. */
function timestamp(ns: string): string {
  const n = BigInt(ns);
  const secs = n / 1_000_000_000n;
  const frac = (n % 1_000_000_000n).toString().padStart(9, "0").replace(/0+$/, "");
  const base = new Date(Number(secs) * 1000).toISOString().slice(0, 19);
  return `${base}${frac ? `.${frac}` : ""}Z`;
}

/** An entry in proto-JSON (int64 as a string, enums by name), owners named as in E2B's image. */
export function protoEntry(e: RawEntry): Record<string, unknown> {
  return {
    name: e.name,
    type: e.type,
    path: e.path,
    size: String(e.size),
    mode: e.mode,
    permissions: e.permissions,
    owner: ownerName(e.uid),
    group: ownerName(e.gid),
    modifiedTime: timestamp(e.mtimeNs),
    ...(e.symlinkTarget !== undefined ? { symlinkTarget: e.symlinkTarget } : {}),
    metadata: e.metadata,
  };
}

function request(op: string, body: Record<string, unknown>) {
  return {
    command_id: `envd-fs-${randomBytes(4).toString("hex")}`,
    program: "python3",
    args: ["-c", HELPER],
    env: [["E2B_STANDIN_FS", JSON.stringify({ op, ...body })] as [string, string]],
  };
}

/** Runs one filesystem operation in the sandbox; envd's errors come back as `EnvdFsError`. */
export async function fsOp(
  session: RemoteRunnerSession,
  op: "stat" | "listdir" | "makedir" | "move" | "remove" | "place",
  body: Record<string, unknown>,
): Promise<Record<string, unknown>> {
  const r = await session.runCommand(request(op, body));
  const line = r.stdout.trim().split("\n").pop() ?? "";
  let out: { ok?: Record<string, unknown>; err?: { code: string; message: string } };
  try {
    out = JSON.parse(line);
  } catch {
    throw new EnvdFsError("internal", `filesystem helper failed: ${r.stderr.trim().slice(0, 500)}`);
  }
  if (out.err) throw new EnvdFsError(out.err.code, out.err.message);
  const ok = out.ok ?? {};
  if (ok.entry) ok.entry = protoEntry(ok.entry as RawEntry);
  if (Array.isArray(ok.entries)) ok.entries = (ok.entries as RawEntry[]).map(protoEntry);
  return ok;
}

/**
 * Starts a watcher in the sandbox. Its output is one JSON line per event: `{"start":{}}` once the watches are
 * set, then `{"filesystem":{name,type,entry?}}`; an error is `{"err":…}` and the end of the command.
 */
export function startWatch(
  session: RemoteRunnerSession,
  body: { path: string; recursive: boolean; includeEntry: boolean },
): Promise<RunnerCommandHandle> {
  if (!session.startCommand) throw new EnvdFsError("unimplemented", "the backend cannot stream commands");
  return session.startCommand(request("watch", body));
}

/** A watcher's line as a WatchDir event (entries in proto-JSON), or an error. */
export function watchEvent(line: string): { event?: unknown; err?: { code: string; message: string } } {
  const m = JSON.parse(line) as {
    start?: object;
    filesystem?: { name: string; type: string; entry?: RawEntry };
    ok?: unknown;
    err?: { code: string; message: string };
  };
  if (m.err) return { err: m.err };
  if (m.start) return { event: { start: {} } };
  if (m.filesystem) {
    const { entry, ...rest } = m.filesystem;
    return { event: { filesystem: { ...rest, ...(entry ? { entry: protoEntry(entry) } : {}) } } };
  }
  return {};
}
