"""cairnctl, the control API's command line client (tools/ctl/README.md).

Two halves:
- against a scripted fake device (a unix socket server in this process): the
  HTTP client's framing (chunked, Content-Length, 100-continue, an early
  refusal while a body is sent), caps and timeouts on hostile answers, exit
  codes and messages, terminal-safe output, install's protocol step by step;
- against a real sandbox device (device.py): status, ps, logs, revisions,
  install of a second revision into a running device with the bytes on the
  wire counted by a proxy (only missing objects travel; a second install
  sends none), --run reaching DONE, a refused revision."""
import hashlib
import json
import os
import re
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

import helpers

CTL_TIMEOUT = 120


def cairnctl_bin():
    b = helpers.build_dir() / "cairnctl"
    if not b.exists():
        pytest.fail(f"{b} missing: run `make` first")
    return b


def ctl(sock, *args, timeout=CTL_TIMEOUT, env=None):
    """Run cairnctl --socket SOCK ARGS...; the CompletedProcess (text)."""
    argv = [cairnctl_bin()] + (["--socket", sock] if sock else []) + list(args)
    return helpers.run(argv, timeout=timeout, env=env)


# ---------------------------------------------------------------- fake device

class Conn:
    """One accepted connection of the fake device."""

    def __init__(self, sock, fake):
        self.sock, self.fake, self.buf = sock, fake, b""
        self.received = 0  # body bytes read by the fake

    def _more(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError
        self.buf += data

    def head(self):
        """(method, target, {lowercase header: value}) of the next request."""
        while b"\r\n\r\n" not in self.buf:
            self._more()
        raw, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = raw.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        hdrs = {}
        for line in lines[1:]:
            k, v = line.split(":", 1)
            hdrs[k.strip().lower()] = v.strip()
        return method, target, hdrs

    def body(self, n, sink=None):
        """Read n body bytes; returned unless a sink (e.g. a hash) takes them."""
        out = []
        while n > 0:
            if not self.buf:
                self._more()
            take, self.buf = self.buf[:n], self.buf[n:]
            n -= len(take)
            self.received += len(take)
            if sink:
                sink(take)
            else:
                out.append(take)
        return b"".join(out)

    def send(self, data):
        self.sock.sendall(data)

    def answer(self, status, body=b"", headers=(), chunks=None):
        """A whole answer: Content-Length framing, or chunked with `chunks`."""
        if isinstance(body, (dict, list)):
            body = (json.dumps(body) + "\n").encode()
        head = "HTTP/1.1 %d X\r\nContent-Type: application/json\r\n" % status
        for h in headers:
            head += h + "\r\n"
        if chunks is None:
            self.send((head + "Content-Length: %d\r\n\r\n" % len(body)).encode() + body)
            return
        out = (head + "Transfer-Encoding: chunked\r\n\r\n").encode()
        for c in chunks:
            out += b"%x\r\n%s\r\n" % (len(c), c)
        self.send(out + b"0\r\n\r\n")


class Fake:
    """A scripted control API: serve(conn) handles each connection."""

    def __init__(self, path, serve):
        self.path, self.serve = str(path), serve
        self.requests = []  # (method, target, headers)
        self.errors = []
        self.lock = threading.Lock()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        d = os.open(os.path.dirname(self.path), os.O_PATH)  # paths past sun_path's 107 bytes
        try:
            self.sock.bind("/proc/self/fd/%d/%s" % (d, os.path.basename(self.path)))
        finally:
            os.close(d)
        self.sock.listen(16)
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(c,), daemon=True).start()

    def _one(self, c):
        conn = Conn(c, self)
        try:
            self.serve(conn)
        except (EOFError, ConnectionError, BrokenPipeError):
            pass
        except Exception as ex:  # shown by the test that owns the fake
            self.errors.append(repr(ex))
        finally:
            c.close()

    def log(self, method, target, headers):
        with self.lock:
            self.requests.append((method, target, headers))

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes accept()
        except OSError:
            pass
        self.sock.close()
        self.thread.join(5)
        if os.path.exists(self.path):
            os.unlink(self.path)


@pytest.fixture
def fake(tmp):
    made = []

    def start(serve, name="fake.sock"):
        f = Fake(tmp / name, serve)
        made.append(f)
        return f
    yield start
    for f in made:
        f.close()
    for f in made:
        assert not f.errors, f.errors


def answer_once(status, body=b"", **kw):
    def serve(conn):
        m, t, h = conn.head()
        conn.fake.log(m, t, h)
        conn.answer(status, body, **kw)
    return serve


CONTAINERS = [{"name": "net", "group": "platform", "state": "READY", "goal": "READY",
               "goal_met": True, "pid": 1234, "restarts": 2, "reason": ""},
              {"name": "web", "group": "app", "state": "BACKOFF", "goal": "STARTED",
               "goal_met": False, "pid": 0, "restarts": 5, "reason": "exited with status 3"}]


# ---------------------------------------------------------------- exit codes

def test_usage_errors_exit_2(tmp):
    for args in ([], ["frobnicate"], ["ps", "extra"], ["logs"], ["logs", "Bad/Name"],
                 ["run", "0"], ["run", "12x"], ["revision", "-1"], ["status", "--run"],
                 ["--timeout", "soon", "status"], ["meta", "get"], ["meta", "set", "k"],
                 ["meta", "get", "../etc"], ["--bogus", "status"], ["install"]):
        r = ctl(str(tmp / "none.sock"), *args)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert r.stderr.startswith("cairnctl: ") or r.stderr.startswith("usage:"), (args, r.stderr)
    r = ctl(None, "--help")
    assert r.returncode == 0 and "install OUT" in r.stdout and "exit status" in r.stdout


def test_unreachable_device_exits_3(tmp):
    r = ctl(str(tmp / "missing.sock"), "status")
    assert r.returncode == 3, r
    assert "cannot reach the device at %s" % (tmp / "missing.sock") in r.stderr
    (tmp / "plain").write_text("not a socket")
    r = ctl(str(tmp / "plain"), "ps")
    assert r.returncode == 3 and "cannot reach" in r.stderr, r
    # the environment names the socket when --socket does not
    env = dict(os.environ, CAIRN_SOCKET=str(tmp / "env.sock"))
    r = ctl(None, "status", env=env)
    assert r.returncode == 3 and str(tmp / "env.sock") in r.stderr, r


def test_silent_device_times_out_with_3(fake, tmp):
    hold = threading.Event()

    def serve(conn):
        conn.head()
        hold.wait(30)
    fake(serve)
    t = time.monotonic()
    r = ctl(str(tmp / "fake.sock"), "--timeout", "1", "status")
    hold.set()
    assert r.returncode == 3, r
    assert "no answer from the device within 1 s" in r.stderr
    assert time.monotonic() - t < 10


@pytest.mark.parametrize("raw,why", [
    (b"garbage\r\n\r\n", "not an HTTP/1.x answer"),
    (b"HTTP/1.1 200 OK\nContent-Length: 2\n\n{}", "bare LF"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}", "cut short"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n{}", "Content-Length"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}", "Content-Length"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
     "both"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", "Transfer-Encoding"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "chunk size"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n{}\r\n0\r\n\r\n", "chunk longer"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"f" * 20 + b"\r\n", "chunk size"),
    (b"HTTP/1.1 200 OK\r\nX: " + b"a" * 40000 + b"\r\n\r\n", "32768 bytes"),
    (b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 8000 + b"\r\n", "32768 bytes"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", "not valid JSON"),
    (b"HTTP/1.1 101 Switching\r\n\r\n", "protocol switch"),
], ids=["garbage", "bare-lf", "cut-short", "negative-length", "two-lengths", "te-and-length",
        "gzip", "bad-chunk", "chunk-overrun", "huge-chunk", "long-line", "big-head", "not-json",
        "switch"])
def test_malformed_answers_exit_3(fake, tmp, raw, why):
    def serve(conn):
        conn.head()
        conn.send(raw)
    fake(serve)
    r = ctl(str(tmp / "fake.sock"), "--timeout", "5", "status")
    assert r.returncode == 3, (r.stdout, r.stderr)
    assert why in r.stderr, r.stderr


def test_oversized_answer_is_refused(fake, tmp):
    def serve(conn):
        conn.head()
        conn.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        block = b"%x\r\n%s\r\n" % (1 << 20, b" " * (1 << 20))
        for _ in range(17):
            conn.send(block)
        conn.send(b"0\r\n\r\n")
    fake(serve)
    r = ctl(str(tmp / "fake.sock"), "ps")
    assert r.returncode == 3 and "larger than 16777216 bytes" in r.stderr, r.stderr


def test_refusal_exits_1_with_error_and_field(fake, tmp):
    fake(answer_once(404, {"error": "no such revision 9", "field": "rev"}))
    r = ctl(str(tmp / "fake.sock"), "revision", "9")
    assert r.returncode == 1
    assert r.stderr == "cairnctl: no such revision 9 (field rev)\n", r.stderr
    assert r.stdout == ""


def test_refusal_without_json_body_names_the_status(fake, tmp):
    fake(answer_once(431, b"<html><body>Request header too large</body></html>"))
    r = ctl(str(tmp / "fake.sock"), "status")
    assert r.returncode == 1
    assert "the device answered HTTP 431: <html>" in r.stderr, r.stderr


# ---------------------------------------------------------------- output

def test_ps_table_from_a_chunked_answer(fake, tmp):
    body = (json.dumps(CONTAINERS) + "\n").encode()
    chunks = [body[:1], body[1:7], body[7:200], body[200:]]
    fake(answer_once(200, chunks=chunks))
    r = ctl(str(tmp / "fake.sock"), "ps")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["NAME", "GROUP", "STATE", "GOAL", "MET", "PID", "RESTARTS",
                                "REASON"]
    assert lines[1].split() == ["net", "platform", "READY", "READY", "yes", "1234", "2", "-"]
    assert lines[2].split()[:7] == ["web", "app", "BACKOFF", "STARTED", "no", "-", "5"]
    assert lines[2].endswith("exited with status 3")
    # columns line up: every row starts its STATE column at the same offset
    assert len({ln.index(w) for ln, w in zip(lines, ["STATE", "READY", "BACKOFF"])}) == 1


def test_json_prints_the_api_answer(fake, tmp):
    fake(answer_once(200, CONTAINERS))
    r = ctl(str(tmp / "fake.sock"), "--json", "ps")
    assert r.returncode == 0
    assert json.loads(r.stdout) == CONTAINERS


def test_status_listing(fake, tmp):
    fake(answer_once(200, {"revision": 7, "phase": "ready",
                           "containers": {"total": 3, "ready": 2}}))
    r = ctl(str(tmp / "fake.sock"), "status")
    assert r.returncode == 0
    assert r.stdout == "revision:   7\nphase:      ready\ncontainers: 2/3 ready\n"


def test_device_text_cannot_drive_the_terminal(fake, tmp):
    evil = [dict(CONTAINERS[0], name="a\u001b]0;pwned\u0007b", reason="x\u001b[2J\r\ny")]
    fake(answer_once(200, evil))
    r = subprocess.run([str(cairnctl_bin()), "--socket", str(tmp / "fake.sock"), "ps"],
                       capture_output=True, timeout=CTL_TIMEOUT)
    assert r.returncode == 0
    assert b"\x1b" not in r.stdout and b"\x07" not in r.stdout and b"\r" not in r.stdout
    assert b"a?]0;pwned?b" in r.stdout and b"x?[2J??y" in r.stdout


def test_long_socket_path(fake, tmp):
    deep = tmp / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    fake(answer_once(200, {"revision": None, "phase": "starting",
                           "containers": {"total": 0, "ready": 0}}), name=deep / "ctrl.sock")
    assert len(str(deep / "ctrl.sock")) > 108
    r = ctl(str(deep / "ctrl.sock"), "status")
    assert r.returncode == 0, r.stderr
    assert "revision:   none" in r.stdout


def test_logs_follow_streams_as_it_arrives(fake, tmp):
    go = threading.Event()

    def serve(conn):
        m, t, h = conn.head()
        conn.fake.log(m, t, h)
        conn.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n")
        conn.send(b"6\r\nfirst\n\r\n")
        go.wait(30)
        conn.send(b"7\r\nsecond\n\r\n0\r\n\r\n")
    f = fake(serve)
    p = subprocess.Popen([str(cairnctl_bin()), "--socket", str(tmp / "fake.sock"),
                          "--timeout", "1", "logs", "web", "-f"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline() == "first\n"  # before the stream ends
        time.sleep(1.5)  # silence longer than --timeout: a followed log may be quiet
        go.set()
        out, err = p.communicate(timeout=30)
    finally:
        go.set()
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0, err
    assert out == "second\n"
    assert f.requests[0][:2] == ("GET", "/v1/logs/web?follow=1")


def test_logs_error_is_json(fake, tmp):
    fake(answer_once(404, {"error": "container 'nope' is not in the running revision",
                           "field": ""}))
    r = ctl(str(tmp / "fake.sock"), "logs", "nope")
    assert r.returncode == 1
    assert r.stderr == "cairnctl: container 'nope' is not in the running revision\n"


def test_meta_and_commands_use_their_routes(fake, tmp):
    def serve(conn):
        m, t, h = conn.head()
        body = conn.body(int(h.get("content-length", "0")))
        conn.fake.log(m, t, body)
        if m == "GET" and t == "/v1/meta/user/color":
            conn.answer(200, {"key": "color", "value": "blue\u001b"})
        elif m == "GET" and t == "/v1/meta/user":
            conn.answer(200, {"color": "blue", "size": "xl"})
        elif m == "GET" and t == "/v1/meta/device":
            conn.answer(200, {"arch": "x86_64", "cairn": "0.1"})
        elif m == "POST" and t == "/v1/commands/gc":
            conn.answer(200, {"freed": 4096})
        else:
            conn.answer(200, {})
    f = fake(serve)
    sock = str(tmp / "fake.sock")
    r = ctl(sock, "meta", "get", "color")
    assert r.returncode == 0 and r.stdout == "blue\x1b\n"  # a pipe gets the value as stored
    assert ctl(sock, "meta", "set", "color", 'red "x"').returncode == 0
    assert ctl(sock, "meta", "rm", "color").returncode == 0
    r = ctl(sock, "meta", "ls")
    assert r.returncode == 0 and r.stdout.splitlines()[1].split() == ["color", "blue"]
    r = ctl(sock, "device-meta")
    assert r.returncode == 0 and "arch   x86_64" in r.stdout
    r = ctl(sock, "gc")
    assert r.returncode == 0 and r.stdout == "freed 4.0 KiB (4096 bytes)\n"
    assert ctl(sock, "reboot").stdout == "reboot requested\n"
    assert ctl(sock, "poweroff").returncode == 0
    seen = [(m, t) for m, t, _ in f.requests]
    assert seen == [("GET", "/v1/meta/user/color"), ("PUT", "/v1/meta/user/color"),
                    ("DELETE", "/v1/meta/user/color"), ("GET", "/v1/meta/user"),
                    ("GET", "/v1/meta/device"), ("POST", "/v1/commands/gc"),
                    ("POST", "/v1/commands/reboot"), ("POST", "/v1/commands/poweroff")]
    assert json.loads(f.requests[1][2]) == {"value": 'red "x"'}


# ---------------------------------------------------------------- install, fake device

def build_out(tmp, keys, rootfs, spec, names=("a", "b"), extra=None, revision=1):
    """A signed cairn-pack OUT with one container per name, each its own rootfs."""
    ctrs = []
    for n in names:
        fs = rootfs("fs-" + n, extra=dict({"etc/who": n}, **((extra or {}).get(n, {}))))
        ctrs.append(helpers.container(n, {"dir": str(fs)}))
    out = tmp / ("out%d" % revision)
    helpers.pack_ok("build", spec(ctrs, name="spec%d.json" % revision, revision=revision),
                    "--out", out)
    helpers.pack_ok("sign", out, "--key", keys[0])
    return out


def objects_of(out):
    return {c["name"]: (c["rootfs"]["object"], c["rootfs"]["size"])
            for c in helpers.revision_doc(out)["containers"]}


class FakeStore:
    """The update side of a fake device: offer, HEAD/PUT objects, revision state."""

    def __init__(self, out, have=(), continue_=True, refuse_objects=None, head_says=None,
                 states=None):
        self.out = Path(out)
        self.doc = helpers.revision_doc(out)
        self.rev = self.doc["revision"]
        self.sizes = {c["rootfs"]["object"]: c["rootfs"]["size"] for c in self.doc["containers"]}
        self.have = set(have)
        self.continue_ = continue_
        self.refuse_objects = refuse_objects  # None, "at-once" or "late"
        self.head_says = set(head_says or ())
        self.states = list(states or [])  # GET answers after a run
        self.put = {}  # digest -> bytes that arrived
        self.offer_body = None
        self.ran = False

    def missing(self):
        return sorted(d for d in self.sizes if d not in self.have)

    def serve(self, conn):
        m, t, h = conn.head()
        conn.fake.log(m, t, h)
        if m == "PUT" and t == "/v1/revisions/%d" % self.rev:
            self.offer_body = json.loads(conn.body(int(h["content-length"])))
            miss = self.missing()
            conn.answer(200, {"revision": self.rev,
                              "state": "DOWNLOADING" if miss else "INSTALLED",
                              "missing": miss,
                              "missing_bytes": sum(self.sizes[d] for d in miss)})
        elif m == "HEAD" and t.startswith("/v1/objects/"):
            d = t[len("/v1/objects/"):]
            ok = d in self.have or d in self.head_says
            conn.send(b"HTTP/1.1 %d X\r\nContent-Length: 0\r\n\r\n" % (200 if ok else 404))
        elif m == "PUT" and t.startswith("/v1/objects/"):
            self.put_object(conn, t[len("/v1/objects/"):], h)
        elif m == "GET" and t == "/v1/revisions/%d" % self.rev:
            state = self.states.pop(0) if self.ran and self.states else (
                "INSTALLED" if not self.missing() else "DOWNLOADING")
            state, verifying = state if isinstance(state, tuple) else (state, False)
            body = {"revision": self.rev, "state": state, "failure": None,
                    "verifying": verifying}
            if state == "FAILED":
                body["failure"] = {"reason": "crash-loop", "message": "web exited 5 times"}
            conn.answer(200, body)
        elif m == "POST" and t == "/v1/revisions/%d/run" % self.rev:
            self.ran = True
            conn.answer(202, {"revision": self.rev, "progress": "/v1/progress"})
        else:
            conn.answer(404, {"error": "no such route", "field": ""})

    def put_object(self, conn, d, h):
        n = int(h["content-length"])
        if self.refuse_objects == "at-once":
            conn.answer(507, {"error": "needs 8.0 MiB, 1.0 MiB free", "field": ""})
            return
        if self.refuse_objects == "late":  # no 100, read nothing, refuse later
            time.sleep(1.5)
            conn.answer(507, {"error": "disk budget exceeded", "field": ""})
            conn.sock.shutdown(socket.SHUT_WR)
            time.sleep(0.5)
            return
        if h.get("expect", "").lower() == "100-continue" and self.continue_:
            conn.send(b"HTTP/1.1 100 Continue\r\n\r\n")
        hs = hashlib.sha256()
        conn.body(n, sink=hs.update)
        self.put[d] = n
        if "sha256:" + hs.hexdigest() != d:
            conn.answer(422, {"error": "digest mismatch", "field": "body"})
            return
        self.have.add(d)
        conn.answer(200, {"object": d, "size": n})


def test_install_sends_only_the_missing_object(fake, tmp, keys, rootfs, spec):
    out = build_out(tmp, keys, rootfs, spec)
    objs = objects_of(out)
    store = FakeStore(out, have=[objs["a"][0]])
    f = fake(store.serve)
    r = ctl(str(tmp / "fake.sock"), "install", out)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "revision 1: INSTALLED\n"
    assert "revision 1: DOWNLOADING, 1 object missing" in r.stderr
    assert "sent 1 object, %d bytes" % objs["b"][1] in r.stderr
    assert store.put == {objs["b"][0]: objs["b"][1]}  # only b, whole, verified
    # the document and signature travel byte for byte
    assert store.offer_body == {"document": (out / "revision.json").read_text(),
                                "signature": (out / "revision.sig").read_text()}
    puts = [h for m, t, h in f.requests if m == "PUT" and t.startswith("/v1/objects/")]
    assert puts[0]["expect"] == "100-continue"
    assert puts[0]["content-type"] == "application/octet-stream"
    # again: nothing is missing, nothing travels
    r = ctl(str(tmp / "fake.sock"), "--json", "install", out)
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary == {"revision": 1, "state": "INSTALLED", "reason": "",
                       "objects_sent": 0, "objects_skipped": 0, "bytes_sent": 0}
    assert len(store.put) == 1


def test_install_skips_an_object_that_arrived_meanwhile(fake, tmp, keys, rootfs, spec):
    out = build_out(tmp, keys, rootfs, spec)
    objs = objects_of(out)
    store = FakeStore(out, have=[objs["a"][0]], head_says=[objs["b"][0]])
    f = fake(store.serve)
    r = ctl(str(tmp / "fake.sock"), "--json", "install", out)
    # the fake's state still lacks b: cairnctl offers again, then gives up
    assert store.put == {}
    assert [t for m, t, _ in f.requests if m == "HEAD"] == ["/v1/objects/" + objs["b"][0]] * 3
    assert r.returncode == 1
    assert "still DOWNLOADING" in r.stderr
    assert json.loads(r.stdout)["objects_skipped"] == 3


def test_install_with_a_server_that_ignores_expect(fake, tmp, keys, rootfs, spec):
    out = build_out(tmp, keys, rootfs, spec)
    store = FakeStore(out, continue_=False)
    fake(store.serve)
    r = ctl(str(tmp / "fake.sock"), "--json", "install", out)
    assert r.returncode == 0, r.stderr
    objs = objects_of(out)
    assert json.loads(r.stdout)["bytes_sent"] == objs["a"][1] + objs["b"][1]
    assert set(store.have) == {objs["a"][0], objs["b"][0]}


@pytest.mark.parametrize("how", ["at-once", "late"])
def test_an_early_refusal_stops_the_upload(fake, tmp, keys, rootfs, spec, how):
    big = os.urandom(8 << 20)
    out = build_out(tmp, keys, rootfs, spec, names=("big",), extra={"big": {"blob": big}})
    store = FakeStore(out, refuse_objects=how)
    f = fake(store.serve)
    t = time.monotonic()
    r = ctl(str(tmp / "fake.sock"), "--json", "install", out)
    assert r.returncode == 1, r.stderr
    msg = "needs 8.0 MiB, 1.0 MiB free" if how == "at-once" else "disk budget exceeded"
    assert "cairnctl: %s\n" % msg in r.stderr
    assert time.monotonic() - t < 20
    assert store.put == {}  # the fake read none of it
    assert len([1 for m, t, _ in f.requests if m == "PUT" and "objects" in t]) == 1


def test_install_refused_document_names_the_reason(fake, tmp, keys, rootfs, spec):
    out = build_out(tmp, keys, rootfs, spec)
    fake(answer_once(422, {"error": "revision.sig: no signature by a trusted key",
                           "field": "signature"}))
    r = ctl(str(tmp / "fake.sock"), "install", out)
    assert r.returncode == 1
    assert r.stderr.endswith("cairnctl: revision.sig: no signature by a trusted key "
                             "(field signature)\n")


def test_install_local_problems_exit_1(fake, tmp, keys, rootfs, spec):
    sock = str(tmp / "fake.sock")
    r = ctl(sock, "install", tmp / "nothing")
    assert r.returncode == 1 and "revision.json" in r.stderr, r.stderr
    out = build_out(tmp, keys, rootfs, spec)
    objs = objects_of(out)
    store = FakeStore(out)
    fake(store.serve)
    path = helpers.object_path(out, objs["b"][0])
    os.truncate(path, 100)
    r = ctl(sock, "install", out)
    assert r.returncode == 1
    assert "object %s has 100 bytes, the revision declares %d" % objs["b"] in r.stderr
    (out / "revision.json").write_text('{"spec": "cairn-revision@1"}')
    r = ctl(sock, "install", out)
    assert r.returncode == 1 and "revision: missing" in r.stderr, r.stderr


@pytest.mark.parametrize("end,code", [("DONE", 0), ("FAILED", 1)])
def test_install_run_waits_for_the_end(fake, tmp, keys, rootfs, spec, end, code):
    out = build_out(tmp, keys, rootfs, spec)
    store = FakeStore(out, states=["TESTING", "TESTING", end])
    fake(store.serve)
    r = ctl(str(tmp / "fake.sock"), "install", out, "--run")
    assert r.returncode == code, r.stderr
    assert "revision 1: TESTING\n" in r.stderr
    if end == "DONE":
        assert r.stdout == "revision 1: INSTALLED\nrevision 1: DONE\n"
    else:
        assert "cairnctl: revision 1 FAILED: crash-loop: web exited 5 times\n" in r.stderr


def test_run_of_a_revision_being_verified_waits_past_its_old_state(fake, tmp, keys, rootfs,
                                                                   spec):
    """A DONE revision run again shows DONE while its objects are re-hashed
    ("verifying": true): cairnctl must not take that for the outcome."""
    out = build_out(tmp, keys, rootfs, spec)
    store = FakeStore(out, states=[("DONE", True), ("DONE", True), "TESTING", "DONE"])
    fake(store.serve)
    r = ctl(str(tmp / "fake.sock"), "install", out, "--run")
    assert r.returncode == 0, r.stderr
    assert "revision 1: TESTING\n" in r.stderr, r.stderr
    assert store.states == [], store.states  # every answer was asked for


# ---------------------------------------------------------------- a real device

from device import make_rootfs, sandbox_device  # noqa: E402

SLEEP = ["/bin/probe", "sleep", "9999999"]
HELLO = ["/bin/sh", "-c", "echo hello-from-web; exec /bin/probe sleep 9999999"]


@pytest.fixture
def dev():
    with sandbox_device("cairn-ctl-") as d:
        yield d


class CountingProxy:
    """A unix socket proxy in front of the device that counts what the client
    sends on each connection (the bytes on the wire toward the device)."""

    def __init__(self, path, target):
        self.path, self.target = str(path), target
        self.conns = []  # {"head": first bytes, "up": bytes sent by the client}
        self.lock = threading.Lock()
        self.threads = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(16)
        self.accepter = threading.Thread(target=self._accept, daemon=True)
        self.accepter.start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(self.target)
            rec = {"head": b"", "up": 0}
            with self.lock:
                self.conns.append(rec)
            for a, b, up in ((c, s, True), (s, c, False)):
                t = threading.Thread(target=self._pump, args=(a, b, rec if up else None),
                                     daemon=True)
                t.start()
                self.threads.append(t)

    @staticmethod
    def _pump(src, dst, rec):
        try:
            while True:
                data = src.recv(1 << 16)
                if not data:
                    break
                if rec is not None:
                    rec["up"] += len(data)
                    if len(rec["head"]) < 8192:
                        rec["head"] += data[:8192]
                dst.sendall(data)
        except OSError:
            pass
        finally:
            try:
                dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def object_puts(self):
        """[(target, body bytes)] of every PUT /v1/objects/… that went through."""
        out = []
        with self.lock:
            for rec in self.conns:
                if rec["head"].startswith(b"PUT /v1/objects/"):
                    head_len = rec["head"].index(b"\r\n\r\n") + 4
                    out.append((rec["head"].split(b" ")[1].decode(), rec["up"] - head_len))
        return out

    def reset(self):
        with self.lock:
            self.conns.clear()

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.accepter.join(5)
        for t in self.threads:
            t.join(5)
        if os.path.exists(self.path):
            os.unlink(self.path)


@pytest.fixture
def proxy(dev):
    made = []

    def start():
        p = CountingProxy(Path(dev.root) / "count.sock", dev.sock)
        made.append(p)
        return p
    yield start
    for p in made:
        p.close()


def test_inspect_a_running_device(dev):
    dev.install(dev.build([{"name": "web", "group": "app", "exec": HELLO}]))
    dev.boot()
    dev.wait(lambda: dev.api("GET", "/v1/status")[1].get("phase") == "ready", 30, "ready")
    r = ctl(dev.sock, "status")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("revision:   1\nphase:      ready\ncontainers: 1/1 ready\n")
    r = ctl(dev.sock, "ps")
    assert r.returncode == 0, r.stderr
    row = r.stdout.splitlines()[1].split()
    pid = dev.containers()["web"]["pid"]
    assert row == ["web", "app", "STARTED", "STARTED", "yes", str(pid), "0", "-"], r.stdout
    r = ctl(dev.sock, "--json", "ps")
    assert [c["name"] for c in json.loads(r.stdout)] == ["web"]
    dev.wait(lambda: "hello-from-web" in ctl(dev.sock, "logs", "web").stdout, 10, "log line")
    r = ctl(dev.sock, "logs", "nope")
    assert r.returncode == 1 and r.stderr.startswith("cairnctl: ") and "nope" in r.stderr
    r = ctl(dev.sock, "revisions")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["REV", "STATE", "ROLE", "REASON"]
    assert lines[1].split()[:2] == ["1", "DONE"], r.stdout
    r = ctl(dev.sock, "revision", "1")
    assert r.returncode == 0 and "state: DONE" in r.stdout, r.stdout
    assert ctl(dev.sock, "revision", "99").returncode == 1


def test_logs_follow_on_a_device(dev):
    ticker = ["/bin/sh", "-c", "i=0; while true; do echo tick-$i; i=$((i+1)); sleep 0.2; done"]
    dev.install(dev.build([{"name": "tick", "group": "app", "exec": ticker}]))
    dev.boot()
    dev.wait_state("tick", "STARTED")
    p = subprocess.Popen([str(cairnctl_bin()), "--socket", dev.sock, "logs", "tick", "-f"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        seen = []
        end = time.monotonic() + 20
        while len(seen) < 10 and time.monotonic() < end:
            line = p.stdout.readline()
            if not line:
                break
            seen.append(line)
        assert len(seen) == 10, (seen, p.stderr.read() if p.poll() is not None else "")
        # lines keep coming in order while the container writes them
        n = [int(s.strip().split("-")[1]) for s in seen if s.startswith("tick-")]
        assert n == sorted(n) and n[-1] - n[0] >= 5, seen
    finally:
        p.kill()
        p.wait(10)


def test_meta_round_trip_on_a_device(dev):
    dev.install(dev.build([{"name": "web", "group": "app", "exec": SLEEP}]))
    dev.boot()
    assert ctl(dev.sock, "meta", "set", "color", "deep blue").returncode == 0
    r = ctl(dev.sock, "meta", "get", "color")
    assert r.returncode == 0 and r.stdout == "deep blue\n"
    r = ctl(dev.sock, "meta", "ls")
    assert r.returncode == 0 and ["color", "deep", "blue"] in [l.split() for l in r.stdout.splitlines()]
    assert ctl(dev.sock, "meta", "rm", "color").returncode == 0
    r = ctl(dev.sock, "meta", "get", "color")
    assert r.returncode == 1 and "(field key)" in r.stderr, r.stderr
    assert ctl(dev.sock, "device-meta").returncode == 0


def test_install_into_a_running_device_sends_only_missing_objects(dev, proxy):
    shared = {"name": "web", "group": "app", "exec": SLEEP}
    dev.install(dev.build([shared]))
    dev.boot()
    dev.wait_state("web", "STARTED")
    fs = make_rootfs(os.path.join(dev.root, "fs-new"))
    with open(os.path.join(fs, "blob"), "wb") as f:
        f.write(os.urandom(3 << 20))
    out = dev.build([shared, {"name": "extra", "group": "app", "exec": SLEEP,
                              "rootfs": {"dir": fs}}], revision=2)
    objs = objects_of(out)
    assert objs["web"][0] != objs["extra"][0]
    p = proxy()
    r = ctl(p.path, "--json", "install", out)
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["state"] == "INSTALLED" and summary["objects_sent"] == 1
    assert summary["bytes_sent"] == objs["extra"][1]
    # on the wire: one object upload, the new image, every byte of it once
    assert p.object_puts() == [("/v1/objects/" + objs["extra"][0], objs["extra"][1])]
    assert os.path.exists(helpers.object_path(dev.storage, objs["extra"][0]))

    # the same revision again: no object travels
    p.reset()
    r = ctl(p.path, "install", out)
    assert r.returncode == 0, r.stderr
    assert "sent 0 objects, 0 bytes" in r.stderr
    assert p.object_puts() == []

    # and run it: the device switches and commits
    r = ctl(p.path, "install", out, "--run", "--wait-timeout", "60")
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert r.stdout.endswith("revision 2: DONE\n")
    assert p.object_puts() == []
    st, status = dev.api("GET", "/v1/status")
    assert status["revision"] == 2
    assert set(dev.containers()) == {"web", "extra"}


def test_a_revision_that_fails_its_test_exits_1_with_the_reason(dev):
    dev.install(dev.build([{"name": "web", "group": "app", "exec": SLEEP}]))
    dev.boot()
    dev.wait_state("web", "STARTED")
    out = dev.build([{"name": "web", "group": "app", "exec": SLEEP},
                     {"name": "mute", "group": "app", "exec": SLEEP, "status_goal": "READY"}],
                    revision=2, groups=[{"name": "app", "timeout_s": 2}])
    r = ctl(dev.sock, "install", out, "--run", "--wait-timeout", "60")
    assert r.returncode == 1, (r.stdout, r.stderr)
    m = re.search(r"cairnctl: revision 2 FAILED: (.+)\n", r.stderr)
    assert m and m.group(1) != "no reason given", r.stderr
    r = ctl(dev.sock, "revisions")
    rows = {l.split()[0]: l for l in r.stdout.splitlines()[1:]}
    assert rows["2"].split()[1] == "FAILED" and m.group(1).split(":")[0] in rows["2"], r.stdout
    # FAILED is recorded before the rollback, which may wait for the try's start-up
    dev.wait(lambda: dev.api("GET", "/v1/status")[1]["revision"] == 1, 20, "revision 1 again")


def test_a_refused_revision_exits_1_naming_the_reason(dev, tmp):
    dev.install(dev.build([{"name": "web", "group": "app", "exec": SLEEP}]))
    dev.boot()
    other = tmp / "other-keys"
    helpers.pack_ok("keygen", other)
    out = dev.build([{"name": "web", "group": "app", "exec": SLEEP}], revision=2)
    (Path(out) / "revision.sig").unlink()
    helpers.pack_ok("sign", out, "--key", other / "signing.key")
    r = ctl(dev.sock, "install", out)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert r.stderr.startswith("cairnctl: ") and "is not trusted" in r.stderr, r.stderr
    assert r.stderr.endswith(" (field signatures)\n"), r.stderr
    r = ctl(dev.sock, "--json", "revision", "2")
    if r.returncode == 0:  # kept on record as REJECTED
        assert json.loads(r.stdout)["state"] == "REJECTED"
