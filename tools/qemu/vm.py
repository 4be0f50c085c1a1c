"""One qemu machine running the cairn device (tools/qemu/README.md): U-Boot
as the BIOS, the raw disk on virtio, the serial console appended to a log,
an i6300esb watchdog, and the admin API reached through a virtio-serial port
whose host end is a unix socket (one host connection = one admin
connection, relayed in the guest by cairn-qemu-agent).

Used by tools/qemu/run (make run QEMU=1), test/qemu and test/bench/boot/qemu.
"""
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time

UBOOT_ROM = "/usr/lib/u-boot/qemu-x86/u-boot.rom"


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        super().__init__("cairn", timeout=timeout)
        self.unix_path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.unix_path)
        self.sock = s


class VM:
    """A qemu process on `disk`. Files it makes live in `workdir`:
    serial.log (appended to by every start), admin.sock, qemu.log."""

    def __init__(self, disk, workdir, no_reboot=True, memory=512, watchdog=True, accel="tcg",
                 skip_countdown=True, echo=None):
        self.disk = disk
        self.skip_countdown = skip_countdown
        self.echo = echo
        self.workdir = workdir
        self.no_reboot = no_reboot
        self.memory = memory
        self.watchdog = watchdog
        self.accel = accel
        self.admin = os.path.join(workdir, "admin.sock")
        self.serial_path = os.path.join(workdir, "serial.log")
        self.serial_sock = os.path.join(workdir, "serial.sock")
        self.reader = None
        self._last_close = 0.0
        self._lock = threading.Lock()
        self._cut = None          # (compiled regex, delay) armed by cut_on()
        self._cut_scan = b""
        self._cut_why_pattern = False
        self._cut_timer = None
        self.cut_at = None        # monotonic time of the last SIGKILL by cut_*
        self.cut_why = None
        self.arrivals = []  # (offset in serial.log, monotonic time) of each chunk
        self.proc = None
        self.boots = 0
        self.started_at = None
        self.mark = 0      # serial log offset where the current start begins

    def argv(self):
        a = ["qemu-system-x86_64", "-accel", self.accel, "-machine", "pc", "-m", str(self.memory),
             "-smp", "1", "-bios", UBOOT_ROM, "-display", "none", "-monitor", "none",
             "-nodefaults", "-no-user-config",
             "-drive", "file=%s,format=raw,if=none,id=disk0,cache=writeback" % self.disk,
             "-device", "virtio-blk-pci,drive=disk0",
             "-chardev", "socket,id=ser0,path=%s,server=on,wait=on" % self.serial_sock,
             "-serial", "chardev:ser0",
             "-device", "virtio-serial-pci",
             "-chardev", "socket,id=admin,path=%s,server=on,wait=off" % self.admin,
             "-device", "virtserialport,chardev=admin,name=cairn.admin"]
        if self.watchdog:
            a += ["-device", "i6300esb", "-action", "watchdog=reset"]
        if self.no_reboot:
            a.append("-no-reboot")
        return a

    # ---- process ----
    def start(self, cut_on=None):
        """Start qemu; `cut_on` = (regex, delay): a power cut armed from the
        first byte of this start's console (see cut_on())."""
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.disarm()
        if cut_on:
            self.cut_on(*cut_on)
        os.makedirs(self.workdir, exist_ok=True)
        try:
            self.mark = os.path.getsize(self.serial_path)
        except OSError:
            self.mark = 0
        for p in (self.admin, self.serial_sock):
            if os.path.exists(p):
                os.unlink(p)
        self.log = open(os.path.join(self.workdir, "qemu.log"), "ab")
        self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self.started_at = time.monotonic()
        self.cut_at = None
        self.boots += 1
        deadline = time.monotonic() + 10
        # qemu waits for the serial console's client (wait=on) before it runs
        while True:
            try:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(self.serial_sock)
                break
            except OSError:
                s.close()
            if self.proc.poll() is not None:
                raise AssertionError("qemu exited at start (%s): %s"
                                     % (self.proc.returncode, self.qemu_log()))
            if time.monotonic() > deadline:
                raise AssertionError("qemu made no serial socket")
            time.sleep(0.02)
        self.reader = threading.Thread(target=self._console, args=(s,), daemon=True)
        self.reader.start()
        return self

    def _console(self, s):
        """Append the console to serial.log (and echo it); skip U-Boot's
        fixed 2 s autoboot countdown: a key stops it, "boot" boots."""
        state = 0 if self.skip_countdown else 2
        with s, open(self.serial_path, "ab", buffering=0) as log:
            try:
                self._console_loop(s, log, state)
            except Exception as ex:  # keep draining: a stalled console stalls the guest
                log.write(("\n[vm.py: console reader: %r]\n" % ex).encode())
                while s.recv(65536):
                    pass

    def _console_loop(self, s, log, state):
        seen = b""
        while True:
            try:
                data = s.recv(65536)
            except OSError:
                return
            if not data:
                return
            self.arrivals.append((log.tell(), time.monotonic()))
            log.write(data)
            with self._lock:
                cut = self._cut
                if cut is not None:
                    self._cut_scan = (self._cut_scan + data)[-4096:]
                    m = cut[0].search(self._cut_scan.decode(errors="replace"))
                    if m:
                        self._cut_in(cut[1], "%.3f s after %r" % (cut[1], m.group(0)))
                        self._cut_why_pattern = True
            if self.echo:
                self.echo.write(data.decode(errors="replace"))
                self.echo.flush()
            if state < 2:
                seen = (seen + data)[-256:]
                try:
                    if state == 0 and b"Hit any key to stop autoboot" in seen:
                        s.sendall(b" ")
                        state, seen = 1, b""
                    elif state == 1 and b"=> " in seen:
                        s.sendall(b"boot\r")
                        state = 2
                except OSError:
                    return

    # ---- power cuts ----
    def cut_in(self, delay):
        """SIGKILL qemu `delay` seconds from now (a power cut), from a timer."""
        with self._lock:
            self._cut_in(delay)

    def _cut_in(self, delay, why=None):
        self._cut = None
        self._cut_why_pattern = False
        proc = self.proc
        why = why or "%.3f s after arming" % delay
        def fire():
            if proc.poll() is None:
                self.cut_at = time.monotonic()
                self.cut_why = why
                os.kill(proc.pid, signal.SIGKILL)
        self._cut_timer = threading.Timer(delay, fire)
        self._cut_timer.daemon = True
        self._cut_timer.start()

    def cut_on(self, pattern, delay):
        """Cut `delay` s after `pattern` (a regex) appears in console output
        that arrives from now on."""
        with self._lock:
            self._cut_scan = b""
            self._cut = (re.compile(pattern), delay)

    def settle(self):
        """The update is over: a cut that its console line already
        triggered still happens (its timer is waited for); any other armed
        cut is called off. True when qemu was cut."""
        with self._lock:
            timer = self._cut_timer if self._cut is None and self._cut_why_pattern else None
        if timer is not None:
            timer.join()
        self.disarm()
        return bool(self.cut_at)

    def disarm(self):
        with self._lock:
            self._cut = None
            timer, self._cut_timer = self._cut_timer, None
        if timer is not None:
            timer.cancel()
            timer.join()

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        """SIGKILL: a power cut as the guest sees it."""
        self.disarm()
        if self.proc is not None:
            if self.proc.poll() is None:
                os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            self.log.close()
        self._join_reader()
        self.proc = None

    def _join_reader(self):
        if self.reader is not None:
            self.reader.join(5)
            self.reader = None

    def wait_exit(self, timeout):
        """qemu's exit status once the guest powered off or (-no-reboot)
        rebooted or was reset; None when it still runs after `timeout` s."""
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        self.log.close()
        self._join_reader()
        return rc

    def qemu_log(self):
        try:
            with open(os.path.join(self.workdir, "qemu.log"), errors="replace") as f:
                return f.read()[-3000:]
        except OSError:
            return ""

    # ---- serial console ----
    def serial(self, since_start=True):
        try:
            with open(self.serial_path, "rb") as f:
                if since_start:
                    f.seek(self.mark)
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def wait_serial(self, pattern, timeout, what=None):
        """The first match of regex `pattern` in this start's console output."""
        rx = re.compile(pattern)
        end = time.monotonic() + timeout
        while True:
            m = rx.search(self.serial())
            if m:
                return m
            if not self.running():
                raise AssertionError("qemu exited waiting for %s\n%s"
                                     % (what or pattern, self.tail()))
            if time.monotonic() > end:
                raise AssertionError("timed out after %ss waiting for %s\n%s"
                                     % (timeout, what or pattern, self.tail()))
            time.sleep(0.05)

    def timeline(self):
        """[(seconds since this start, line)] of this start's console, each
        line timed by the arrival of the chunk that held its start."""
        with open(self.serial_path, "rb") as f:
            f.seek(self.mark)
            data = f.read()
        chunks = [(off - self.mark, t) for off, t in self.arrivals if off >= self.mark]
        out, i, pos = [], 0, 0
        for line in data.split(b"\n"):
            while i + 1 < len(chunks) and chunks[i + 1][0] <= pos:
                i += 1
            t = chunks[i][1] - self.started_at if chunks else 0.0
            out.append((t, line.decode(errors="replace").rstrip("\r")))
            pos += len(line) + 1
        return out

    def tail(self, n=6000):
        return self.serial()[-n:]

    # ---- control API ----
    # The guest learns that the host closed the port through virtio-serial's
    # control queue, which is not ordered with the data queue: a request sent
    # right after the previous connection closed could reach the relay
    # before the close does, and be dropped with it. So connections are
    # spaced by this much.
    GAP = 0.05

    def api(self, method, path, body=None, timeout=10, raw=False):
        """(status, JSON or text) of one request on the admin socket."""
        wait = self._last_close + self.GAP - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        conn = UnixHTTPConnection(self.admin, timeout)
        try:
            if isinstance(body, (dict, list)):
                data, ctype = json.dumps(body).encode(), "application/json"
            else:
                data, ctype = body, "application/octet-stream"
            headers = {"Connection": "close"}
            if data is not None:
                headers["Content-Type"] = ctype
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            text = resp.read()
            if raw:
                return resp.status, text
            text = text.decode(errors="replace")
            try:
                return resp.status, json.loads(text)
            except ValueError:
                return resp.status, text
        finally:
            conn.close()
            self._last_close = time.monotonic()

    def try_api(self, method, path, body=None, timeout=3):
        try:
            return self.api(method, path, body, timeout)
        except (OSError, http.client.HTTPException):
            return None

    def wait(self, cond, timeout, what):
        end = time.monotonic() + timeout
        while True:
            v = cond()
            if v:
                return v
            if not self.running():
                raise AssertionError("qemu exited (%s) waiting for %s\n%s"
                                     % (self.proc.returncode if self.proc else None, what,
                                        self.tail()))
            if time.monotonic() > end:
                raise AssertionError("timed out after %ss waiting for %s\n%s"
                                     % (timeout, what, self.tail()))
            time.sleep(0.1)

    def status(self):
        got = self.try_api("GET", "/v1/status")
        return got[1] if got and got[0] == 200 and isinstance(got[1], dict) else None
