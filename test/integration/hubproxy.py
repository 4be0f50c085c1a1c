"""The hub for tests and benchmarks: nginx serving a hub directory through
tools/hub/serve (class Hub), and a TCP proxy between a device and that nginx
that misbehaves on purpose (class Proxy): it cuts connections at scheduled
byte offsets, delays or throttles, refuses connections, or answers chosen
requests itself with garbage, an endless body, or silence. It counts every
byte it forwards, so a test can bound what a device downloaded.

Both clean up after themselves: Hub.stop() and Proxy.close() leave no
process, thread or socket behind, and both are context managers."""
import fcntl
import json
import os
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "../.."))
SERVE = os.path.join(REPO, "tools/hub/serve")
BUILD = os.path.abspath(os.environ.get("CAIRN_BUILD", os.path.join(REPO, "build")))
CHUNK = 64 * 1024


def nginx_path():
    """nginx's path, or None when it is not installed."""
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/sbin/nginx") if os.access(p, os.X_OK)), None)


def free_port():
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout, proc=None, what="port"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            raise AssertionError("%s exited (%s) before listening" % (what, proc.returncode))
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("%s: nothing listens on %d after %ss" % (what, port, timeout))


class Hub:
    """nginx on 127.0.0.1:port serving `dir` (tools/hub/serve). The port is
    kept across stop()/start(), so a device configured once finds the hub
    again when it comes back."""

    def __init__(self, root, port=None, serve_args=()):
        self.root = str(root)
        self.dir = os.path.join(self.root, "hub")
        self.run = os.path.join(self.root, "hub-run")
        os.makedirs(self.dir, exist_ok=True)
        self.port = port or free_port()
        self.serve_args = list(serve_args)
        self.proc = None
        self.scheme = "https" if "--tls" in self.serve_args else "http"

    @property
    def url(self):
        return "%s://127.0.0.1:%d" % (self.scheme, self.port)

    def start(self, timeout=10):
        assert self.proc is None, "hub already running"
        os.makedirs(self.run, exist_ok=True)
        log = open(os.path.join(self.run, "serve.log"), "ab")
        try:
            self.proc = subprocess.Popen(
                [SERVE, "--run", self.run, *self.serve_args, self.dir, str(self.port)],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            log.close()
        try:
            wait_port(self.port, timeout, self.proc, "nginx")
        except AssertionError as e:
            self.stop()
            raise AssertionError("%s\n%s" % (e, self.logs()))
        return self

    def stop(self, timeout=10):
        """Stop nginx (SIGTERM: at once); SIGKILL to its group if it lingers."""
        p, self.proc = self.proc, None
        if p is None:
            return
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(p.pid, signal.SIGKILL)  # workers, if the master died first
        except ProcessLookupError:
            pass
        if p.poll() is None:
            p.wait(5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def logs(self):
        out = []
        for name in ("serve.log", "error.log"):
            try:
                with open(os.path.join(self.run, name), errors="replace") as f:
                    out.append("== %s\n%s" % (name, f.read()[-4000:]))
            except OSError:
                pass
        return "\n".join(out)

    def requests(self):
        """Access log entries: dicts with time (unix, of the log line: the
        request's end), method, path, status, bytes (all bytes sent), body
        (body bytes sent), range, inm (If-None-Match), time_s (nginx's
        $request_time)."""
        rx = re.compile(r'^(\S+) \S+ "(\S+) (\S+) [^"]*" (\d+) (\d+) (\d+) '
                        r'"([^"]*)" "([^"]*)" (\S+)')
        out = []
        try:
            with open(os.path.join(self.run, "access.log"), errors="replace") as f:
                for line in f:
                    m = rx.match(line)
                    if m:
                        out.append({"time": float(m[1]), "method": m[2], "path": m[3],
                                    "status": int(m[4]), "bytes": int(m[5]), "body": int(m[6]),
                                    "range": m[7], "inm": m[8], "time_s": float(m[9])})
        except FileNotFoundError:
            pass
        return out

    def publish(self, out, device=None, group=None, check=True, keys=None):
        args = [os.path.join(BUILD, "cairn-pack"), "publish", str(out), "--hub", self.dir]
        args += ["--device", device] if device else ["--group", group]
        args += ["--keys", str(keys)] if keys else []
        r = subprocess.run(args, capture_output=True, text=True, timeout=120)
        if check:
            assert r.returncode == 0, "publish: exit %d\n%s" % (r.returncode, r.stderr)
        return r

    def device_dir(self, device):
        return os.path.join(self.dir, "v1/devices", device)

    def status(self, device):
        """The device's last report as stored by nginx, or None."""
        try:
            with open(os.path.join(self.device_dir(device), "status")) as f:
                return json.load(f)
        except (FileNotFoundError, ValueError):
            return None

    def object_path(self, digest):
        hexd = digest[7:] if digest.startswith("sha256:") else digest
        return os.path.join(self.dir, "v1/objects/sha256", hexd)


class Proxy:
    """127.0.0.1:self.port -> 127.0.0.1:upstream_port, one thread per direction
    per connection. Counters: down (bytes upstream -> client, headers
    included), up, connections, cuts (connections it cut), injected (bytes it
    made up itself), discarded (of down, bytes still in the proxy's send queue
    when a cut reset the connection: the kernel throws them away, the client
    never sees them; on loopback that can be megabytes a cut)."""

    def __init__(self, upstream_port, host="127.0.0.1"):
        self.upstream = (host, upstream_port)
        self.lock = threading.Lock()
        self.down = self.up = self.connections = self.cuts = self.injected = 0
        self.discarded = 0
        self.delay = 0.0      # seconds before each downstream chunk
        self.rate = None      # downstream bytes per second, None: unlimited
        self.refuse = False   # accept and close at once
        self._schedule = []   # cut_bytes offsets at which to cut, ascending
        self._rules = []      # (compiled regex on the request target, action)
        self._cut_match = None  # regex: only responses to matching requests count for cuts
        self.cut_bytes = 0    # downstream bytes that counted for the cut schedule
        self.log = []         # (time.monotonic(), method, target) of every request seen
        self.cut_log = []     # (target, bytes of that connection forwarded, "rst"|"fin") per cut
        self._conns = {}      # id -> (_Conn, its thread)
        self._closing = False
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self._acceptor = threading.Thread(target=self._accept_loop, daemon=True)
        self._acceptor.start()

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    # ---- what to do ----

    def cut_at(self, offsets, match=None):
        """Cut the connection carrying the downstream byte at each offset
        (counted from now; with `match`, a regex, only bytes of responses to
        requests whose target matches count). The schedule replaces any
        earlier one."""
        with self.lock:
            self._cut_match = re.compile(match) if match else None
            self._schedule = sorted(self.cut_bytes + int(o) for o in offsets)

    def cut_random(self, n, start, end, seed=None, match=None):
        """n cuts at distinct random offsets in [start, end); returns them."""
        rnd = random.Random(seed)
        offs = sorted(rnd.sample(range(int(start), int(end)), n))
        self.cut_at(offs, match)
        return offs

    def requests(self, pattern=""):
        """(time.monotonic(), method, target) of the requests whose target matches."""
        rx = re.compile(pattern)
        with self.lock:
            return [r for r in self.log if rx.search(r[2])]

    def cuts_pending(self):
        with self.lock:
            return len(self._schedule)

    def inject(self, pattern, action):
        """Answer requests whose target matches `pattern` (re.search) with
        `action` instead of forwarding them: "garbage" (random bytes, then
        close), "endless" (a 200 header, then bytes until the client gives
        up), "endless-length" (the same with a huge Content-Length), "hang"
        (read the request, never answer), or bytes (sent as they are, then
        close). Rules are tried in the order given."""
        with self.lock:
            self._rules.append((re.compile(pattern), action))

    def clear(self):
        """Forward everything again: no rules, no schedule, no delay."""
        with self.lock:
            self._rules, self._schedule = [], []
            self.delay, self.rate, self.refuse = 0.0, None, False

    def reset_counters(self):
        with self.lock:
            self.down = self.up = self.connections = self.cuts = self.injected = 0
            self.discarded = self.cut_bytes = 0
            self._schedule, self.log, self.cut_log = [], [], []

    # ---- plumbing ----

    def _accept_loop(self):
        while not self._closing:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
                refuse = self.refuse or self._closing
            if refuse:
                c.close()
                continue
            conn = _Conn(c)
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            with self.lock:
                self._conns[id(conn)] = (conn, t)
            t.start()

    def _serve(self, conn):
        """The first bytes of the request are read before nginx is dialled, so
        a request is seen (and logged) even when nginx is down."""
        try:
            try:
                first = conn.client.recv(CHUNK)
            except OSError:
                return
            if not first:
                return
            action = self._rule_for(first, conn)
            if action is not None:
                conn.answering = True
                self._answer(conn, action)
                return
            try:
                conn.up = socket.create_connection(self.upstream, timeout=10)
                conn.up.settimeout(None)
            except OSError:
                conn.cut(rst=True)  # nginx is down: the client sees a reset
                return
            t = threading.Thread(target=self._downstream, args=(conn,), daemon=True)
            t.start()
            self._upstream(conn, first)
            t.join()
        finally:
            conn.close()
            with self.lock:
                self._conns.pop(id(conn), None)

    def _rule_for(self, data, conn=None):
        """Log a request that starts in `data`; the rule's action for it or None."""
        m = re.match(rb"(GET|HEAD|PUT|POST|DELETE|OPTIONS) (\S+) HTTP/1\.[01]\r\n", data)
        if not m:
            return None
        target = m.group(2).decode("latin-1")
        with self.lock:
            self.log.append((time.monotonic(), m.group(1).decode(), target))
            if conn is not None:
                conn.target = target
            for rx, action in self._rules:
                if rx.search(target):
                    return action
        return None

    def _upstream(self, conn, first):
        """client -> upstream, watching for requests to answer ourselves;
        `first` (already logged and checked) is forwarded first."""
        data = first
        while not conn.done:
            if data is None:
                try:
                    data = conn.client.recv(CHUNK)
                except OSError:
                    break
                if not data:
                    _shut(conn.up, socket.SHUT_WR)  # the client is done sending
                    return
                action = self._rule_for(data, conn)
                if action is not None:
                    conn.answering = True  # nginx's side must not touch the client now
                    _shut(conn.up, socket.SHUT_RDWR)
                    self._answer(conn, action)
                    return
            with self.lock:
                self.up += len(data)
            try:
                conn.up.sendall(data)
            except OSError:
                break
            data = None
        if not conn.answering:
            conn.cut(rst=False)

    def _take_cut(self, conn, n):
        """Under the lock: how many of the next n downstream bytes to send
        before cutting, or None when no cut falls in them."""
        if self._cut_match and not self._cut_match.search(conn.target):
            return None
        at = self.cut_bytes
        if not self._schedule or at + n <= self._schedule[0]:
            self.cut_bytes += n
            return None
        keep = max(self._schedule.pop(0) - at, 0)
        while self._schedule and self._schedule[0] <= at + keep:
            self._schedule.pop(0)  # offsets already passed: one cut for them all
        self.cut_bytes += keep
        return keep

    def _downstream(self, conn):
        """upstream -> client, applying the cut schedule, delay and rate."""
        while not conn.done:
            try:
                data = conn.up.recv(CHUNK)
            except OSError:
                break
            if conn.answering:
                return
            if not data:
                _shut(conn.client, socket.SHUT_WR)  # the response is complete
                return
            if self.delay:
                time.sleep(self.delay)
            with self.lock:
                keep = self._take_cut(conn, len(data))
                if keep is not None:
                    data = data[:keep]
                    self.cuts += 1
                    rst = self.cuts % 2 == 1  # alternate RST and FIN
                    self.cut_log.append((conn.target, conn.down + len(data),
                                         "rst" if rst else "fin"))
                self.down += len(data)
                conn.down += len(data)
                rate = self.rate
            try:
                conn.client.sendall(data)
            except OSError:
                break
            if keep is not None:
                if rst:
                    unsent = _unsent(conn.client)
                    with self.lock:
                        self.discarded += unsent
                conn.cut(rst=rst)
                return
            if rate:
                time.sleep(len(data) / rate)
        if not conn.answering:
            conn.cut(rst=False)

    def _answer(self, conn, action):
        c = conn.client
        try:
            if action == "hang":
                while not self._closing and not conn.done and c.recv(CHUNK):
                    pass
            elif isinstance(action, (bytes, bytearray)):
                self._count_injected(len(action))
                c.sendall(action)
            elif action == "garbage":
                junk = os.urandom(4096)
                self._count_injected(len(junk))
                c.sendall(junk)
            elif action in ("endless", "endless-length"):
                head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                head += (b"Content-Length: 1099511627776\r\n" if action == "endless-length"
                         else b"Connection: close\r\n")
                block = head + b"\r\n" + b'{"revision": 99, "document": "'
                filler = b"A" * CHUNK
                while not self._closing and not conn.done:
                    c.sendall(block)
                    self._count_injected(len(block))
                    block = filler
            else:
                raise ValueError("unknown proxy action %r" % (action,))
        except OSError:
            pass
        finally:
            conn.cut(rst=False)

    def _count_injected(self, n):
        with self.lock:
            self.injected += n

    def close(self):
        """Stop accepting, cut every connection, wait for every thread."""
        self._closing = True
        _shut(self.sock, socket.SHUT_RDWR)
        self.sock.close()
        self._acceptor.join(5)
        with self.lock:
            conns = list(self._conns.values())
        for conn, _ in conns:
            conn.cut(rst=False)  # shutdown wakes readers and writers alike
        for _, t in conns:
            t.join(10)
        assert not any(t.is_alive() for _, t in conns), "proxy threads still running"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class _Conn:
    """One proxied connection: the client's socket and nginx's."""

    def __init__(self, client):
        self.client, self.up = client, None
        self.done = self.answering = False
        self.target = ""
        self.down = 0  # bytes forwarded to the client on this connection
        self.lock = threading.Lock()

    def cut(self, rst):
        """End both sides once: FIN, or RST towards the client. Readers
        blocked in recv wake up (shutdown), the sockets close in close()."""
        with self.lock:
            if self.done:
                return
            self.done = True
        if rst and self.client is not None:
            _shut(self.client, socket.SHUT_RD)
            try:
                self.client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
                self.client.close()  # linger 0: the close sends RST
            except OSError:
                pass
        else:
            _shut(self.client, socket.SHUT_RDWR)
        _shut(self.up, socket.SHUT_RDWR)

    def close(self):
        self.cut(rst=False)
        for s in (self.client, self.up):
            if s is not None:
                s.close()


SIOCOUTQNSD = 0x894B  # linux/sockios.h


def _unsent(s):
    """Bytes in s's send queue not yet sent (SIOCOUTQNSD). Sent but not yet
    acknowledged bytes are left out: on loopback they sit in the client's
    receive queue, which it still reads after the reset."""
    try:
        return struct.unpack("i", fcntl.ioctl(s.fileno(), SIOCOUTQNSD,
                                              struct.pack("i", 0)))[0]
    except OSError:
        return 0


def _shut(s, how):
    if s is None:
        return
    try:
        s.shutdown(how)
    except OSError:
        pass
