/**
 * The part uploader PART_SCRIPT hands over to where `python3` (3.5 or later) is present and no proxy is
 * configured: the same plan, the same output lines, in one process that reads each byte once to hash it.
 *
 * $1 file, $2 size, $3 part size, $4 parallelism; the rest are curl-style `-H "Name: value"` pairs. Part n's
 * URL is in RODER_PART_URL_n (never argv). Prints "part N MD5HEX ETAG" as each part is acknowledged and
 * "sha256 HEX" at the end; exit 96 when the file ends early, 97 when a part failed.
 *
 * One reader thread walks the file in 1 MiB preads and computes each part's MD5, handing every chunk to a
 * second thread that computes the file's sha256 (hashlib drops the GIL: two cores hash at once). As soon as
 * a part's MD5 is known, one of `parallelism` sender threads PUTs it with that Content-MD5, reading the range
 * again (from the page cache) with sendfile(2) on plain HTTP and 1 MiB preads over TLS, so memory stays at a
 * few MiB whatever the part size. A byte that changed between the two reads makes the store refuse the part
 * (its MD5 no longer matches). A part answered 5xx, 408 or 429, or whose connection broke, is tried 3 times;
 * a part that fails stops new parts, and the senders in flight finish before the process exits.
 */
export const PART_UPLOADER_PY = String.raw`
import base64, hashlib, http.client, os, queue, ssl, sys, threading, time
from urllib.parse import urlsplit

path, size, ps, par = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
headers = []
rest = sys.argv[5:]
for i in range(0, len(rest) - 1, 2):
    if rest[i] == "-H":
        k, _, v = rest[i + 1].partition(":")
        headers.append((k.strip(), v.strip()))
CHUNK = 1 << 20
try:
    fd = os.open(path, os.O_RDONLY)
except OSError as e:
    sys.stderr.write("cannot open the file: %s\n" % e.strerror)
    sys.exit(96)
failed = threading.Event()
lock = threading.Lock()

def say(line, stream):
    with lock:
        stream.write(line + "\n")
        stream.flush()

def send_body(conn, off, length):
    sock = conn.sock
    if length == 0:
        return
    if not isinstance(sock, ssl.SSLSocket):
        with open(path, "rb") as f:
            if sock.sendfile(f, off, length) != length:
                raise EOFError("file ended before the part did")
        return
    done = 0
    while done < length:
        b = os.pread(fd, min(CHUNK, length - done), off + done)
        if not b:
            raise EOFError("file ended before the part did")
        sock.sendall(b)
        done += len(b)

def put(n, off, length, hexmd5):
    url = os.environ.get("RODER_PART_URL_%d" % n)
    if not url:
        say("part %d failed: no URL" % n, sys.stderr)
        return False
    u = urlsplit(url)
    target = u.path + ("?" + u.query if u.query else "")
    md5b64 = base64.b64encode(bytes.fromhex(hexmd5)).decode()
    for attempt in (1, 2, 3):
        conn = None
        code, detail = 0, ""
        try:
            if u.scheme == "https":
                conn = http.client.HTTPSConnection(u.hostname, u.port or 443, timeout=300,
                                                   context=ssl.create_default_context())
            else:
                conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=300)
            conn.putrequest("PUT", target, skip_host=True, skip_accept_encoding=True)
            conn.putheader("Host", u.netloc.rpartition("@")[2])
            conn.putheader("User-Agent", "roder-runner-parts/1 (python)")
            conn.putheader("Content-Length", str(length))
            conn.putheader("Content-MD5", md5b64)
            for k, v in headers:
                conn.putheader(k, v)
            conn.endheaders()
            send_body(conn, off, length)
            r = conn.getresponse()
            code = r.status
            body = r.read(300)
            if 200 <= code < 300:
                etag = (r.getheader("ETag") or "-").replace('"', "").strip() or "-"
                say("part %d %s %s" % (n, hexmd5, "".join(etag.split())), sys.stdout)
                return True
            detail = body.decode("utf-8", "replace")
        except EOFError as e:
            say("part %d failed: %s" % (n, e), sys.stderr)
            return False
        except (OSError, http.client.HTTPException) as e:
            detail = type(e).__name__
        finally:
            if conn is not None:
                conn.close()
        if (code == 0 or code >= 500 or code in (408, 429)) and attempt < 3 and not failed.is_set():
            time.sleep(1)
            continue
        say("part %d failed with HTTP %03d: %s" % (n, code, detail), sys.stderr)
        return False

jobs = queue.Queue(maxsize=par)
def sender():
    while True:
        job = jobs.get()
        if job is None:
            return
        try:
            ok = not failed.is_set() and put(*job)
        except BaseException as e:
            say("part %d failed: %s" % (job[0], type(e).__name__), sys.stderr)
            ok = False
        if not ok:
            failed.set()

sha = hashlib.sha256()
chunks = queue.Queue(maxsize=16)
def sha_worker():
    while True:
        b = chunks.get()
        if b is None:
            return
        sha.update(b)

# Daemon threads: an unexpected error in this thread ends the process instead of leaving it waiting.
threads = [threading.Thread(target=sender, daemon=True) for _ in range(par)]
hasher = threading.Thread(target=sha_worker, daemon=True)
for t in threads + [hasher]:
    t.start()
short = False
n, off = 1, 0
try:
    while (off < size or n == 1) and not failed.is_set():
        length = min(ps, size - off)
        md5 = hashlib.md5()
        got = 0
        while got < length:
            b = os.pread(fd, min(CHUNK, length - got), off + got)
            if not b:
                break
            md5.update(b)
            chunks.put(b)
            got += len(b)
        if got < length:
            say("the file ended at %d bytes, before its size %d" % (off + got, size), sys.stderr)
            short = True
            failed.set()
            break
        jobs.put((n, off, length, md5.hexdigest()))
        n, off = n + 1, off + length
except OSError as e:
    say("reading the file failed: %s" % e.strerror, sys.stderr)
    short = True
    failed.set()
for _ in threads:
    jobs.put(None)
chunks.put(None)
for t in threads + [hasher]:
    t.join()
if short:
    sys.exit(96)
if failed.is_set():
    sys.exit(97)
print("sha256 " + sha.hexdigest(), flush=True)
`;
