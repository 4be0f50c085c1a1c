"""A sandbox device for integration tests: build and sign a revision with
cairn-pack, provision a storage directory, boot `cairn --sandbox` on it and talk
to its control API over the admin socket. Everything it creates lives under one
temporary directory; stop() leaves no process, mount or loop device behind."""
import contextlib
import glob
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

BUILD = os.environ.get("CAIRN_BUILD", os.path.join(os.path.dirname(__file__), "../../build"))
BUILD = os.path.abspath(BUILD)


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=5):
        super().__init__("cairn", timeout=timeout)
        self.unix_path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.unix_path)
        self.sock = s


def api(sock_path, method, path, body=None, timeout=5):
    """(status, parsed JSON or raw text) of one request over a unix socket."""
    conn = UnixHTTPConnection(sock_path, timeout=timeout)
    try:
        data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
        headers = {"Content-Type": "application/json"} if data is not None else {}
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        raw = resp.read().decode()
        try:
            return resp.status, json.loads(raw)
        except ValueError:
            return resp.status, raw
    finally:
        conn.close()


def make_rootfs(path, extra_links=()):
    """A busybox-static root filesystem with the probe in /bin."""
    shutil.rmtree(path, ignore_errors=True)
    for d in ("bin", "proc", "sys", "dev", "tmp", "run/cairn", "data", "etc"):
        os.makedirs(os.path.join(path, d), exist_ok=True)
    shutil.copy("/bin/busybox", os.path.join(path, "bin/busybox"))
    shutil.copy(os.path.join(BUILD, "probe"), os.path.join(path, "bin/probe"))
    for a in ("sh", "sleep", "cat", "ls", "echo", "date", "tee", "mkdir", "touch", "wc", "grep", "kill") + tuple(extra_links):
        os.symlink("busybox", os.path.join(path, "bin", a))
    with open(os.path.join(path, "etc/passwd"), "w") as f:
        f.write("root:x:0:0:root:/:/bin/sh\n")
    return path


def pack(*args, check=True):
    return subprocess.run([os.path.join(BUILD, "cairn-pack"), *map(str, args)],
                          capture_output=True, text=True, check=check)


def our_mounts(root):
    """Mount points (host namespace) under root."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4]
            if mp.startswith(root):
                out.append(mp)
    return out


def our_loops(root):
    """Loop devices whose backing file lies under root."""
    out = []
    for bf in glob.glob("/sys/block/loop*/loop/backing_file"):
        try:
            with open(bf) as f:
                if f.read().strip().startswith(root):
                    out.append(bf)
        except OSError:
            pass
    return out


@contextlib.contextmanager
def sandbox_device(prefix):
    """A Device in a fresh temporary directory. On the way out, whatever the
    test did: cairn stopped (killed if it will not stop), the directory
    removed, and no mount or loop device of it may remain (the sandbox's
    mounts die with its namespace; the kernel tears that down lazily)."""
    root = tempfile.mkdtemp(prefix=prefix)
    d = Device(root)
    try:
        yield d
    finally:
        try:
            d.stop()
        finally:
            d.kill()
        end = time.monotonic() + 10
        while (our_mounts(root) or our_loops(root)) and time.monotonic() < end:
            time.sleep(0.1)
        left_mounts, left_loops = our_mounts(root), our_loops(root)
        shutil.rmtree(root, ignore_errors=True)
        assert not left_mounts, left_mounts
        assert not left_loops, left_loops


class Device:
    def __init__(self, root):
        self.root = str(root)
        os.makedirs(self.root, exist_ok=True)
        self.keys = os.path.join(self.root, "keys")
        self.storage = os.path.join(self.root, "storage")
        self.sock = os.path.join(self.root, "ctrl.sock")
        self.proc = None
        self.log_path = os.path.join(self.root, "cairn.log")
        self._log = None
        self.trust = os.path.join(self.root, "trust")
        if not os.path.exists(os.path.join(self.keys, "signing.key")):
            pack("keygen", self.keys)
            os.makedirs(self.trust, exist_ok=True)
            shutil.copy(os.path.join(self.keys, "signing.pub"), self.trust)

    def rootfs(self, name="rootfs"):
        p = os.path.join(self.root, name)
        if not os.path.exists(p):
            make_rootfs(p)
        return p

    def build(self, containers, revision=1, groups=None, name=None):
        """Build and sign a revision; containers use {"dir": <rootfs>} unless given."""
        spec = {"spec": "cairn-revision@1", "revision": revision,
                "created": "2026-11-21T10:00:00Z", "containers": []}
        if groups is not None:
            spec["groups"] = groups
        for c in containers:
            c = dict(c)
            c.setdefault("rootfs", {"dir": self.rootfs()})
            spec["containers"].append(c)
        out = os.path.join(self.root, name or "rev%d" % revision)
        with open(out + ".spec.json", "w") as f:
            json.dump(spec, f, indent=1)
        pack("build", out + ".spec.json", "--out", out)
        pack("sign", out, "--key", os.path.join(self.keys, "signing.key"))
        return out

    def install(self, out, force=False):
        args = ["install", out, "--storage", self.storage, "--trust",
                os.path.join(self.keys, "signing.pub")]
        if force:
            args.append("--force")
        return pack(*args)

    def boot(self, wait_socket=True, extra_env=None):
        env = dict(os.environ)
        env.update(extra_env or {})
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [os.path.join(BUILD, "cairn"), "--sandbox", "--storage", self.storage,
             "--trust", self.trust, "--admin-socket", self.sock,
             "--log-level", "debug"],
            stdout=self._log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        if wait_socket:
            self.wait(lambda: os.path.exists(self.sock) and self.try_api("GET", "/v1/status"),
                      10, "admin socket answering")
        return self

    def try_api(self, method, path, body=None):
        try:
            return api(self.sock, method, path, body)
        except OSError:
            return None

    def api(self, method, path, body=None):
        return api(self.sock, method, path, body)

    def containers(self):
        st, body = self.api("GET", "/v1/containers")
        assert st == 200, body
        return {c["name"]: c for c in body}

    def wait(self, cond, timeout, what):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            v = cond()
            if v:
                return v
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError("cairn exited (%s) while waiting for %s\n%s"
                                     % (self.proc.returncode, what, self.log()))
            time.sleep(0.05)
        raise AssertionError("timed out after %ss waiting for %s\n%s" % (timeout, what, self.log()[-6000:]))

    def wait_state(self, name, states, timeout=20):
        states = (states,) if isinstance(states, str) else states
        return self.wait(lambda: self.containers().get(name, {}).get("state") in states and
                         self.containers()[name], timeout, "%s in %s" % (name, states))

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def ctr_log(self, name, rev=1):
        try:
            with open(os.path.join(self.storage, "logs", str(rev), name + ".log"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def stop(self, sig=signal.SIGTERM, timeout=30):
        """Signal cairn and wait; returns its exit status (None if it was not running)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
                raise AssertionError("cairn did not stop within %ss\n%s" % (timeout, self.log()[-6000:]))
        code = self.proc.returncode
        self.proc = None
        if self._log:
            self._log.close()
            self._log = None
        return code

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None
        if self._log:
            self._log.close()
            self._log = None

    def pid1(self):
        """Host pid of the sandbox's PID 1 (the child of the outer cairn)."""
        kids = children(self.proc.pid)
        assert kids, "no namespace PID 1"
        return kids[0]

    def orchestrator(self):
        kids = children(self.pid1())
        assert kids, "no orchestrator"
        return kids[0]


def children(pid):
    """The children of pid, oldest first (by start time: pids wrap)."""
    out = []
    for path in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(path) as f:
                data = f.read()
        except OSError:
            continue
        rest = data[data.rindex(")") + 2:].split()
        if int(rest[1]) == pid:
            out.append((int(rest[19]), int(path.split("/")[2])))  # field 22: starttime
    return [p for _, p in sorted(out)]


def descendants(pid):
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for c in children(p):
            out.append(c)
            todo.append(c)
    return out


def proc_state(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            data = f.read()
        return data[data.rindex(")") + 2]
    except OSError:
        return None
