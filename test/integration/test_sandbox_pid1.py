"""PID 1 and sandbox mode (init/pid1.c, tools/cairn-sandbox), without the
orchestrator: the test-only variable CAIRN_TEST_ORCH makes PID 1's child
exit with a status (exit:N), wait with default signal dispositions (sleep)
or die of SIGSEGV (crash) instead of running orch_main.

Every cairn started here is SIGKILLed at teardown if still running; the
namespace's PID 1 has PR_SET_PDEATHSIG=SIGKILL, so its whole namespace goes
with it. Temp dirs go with the `tmp` fixture."""
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

import helpers

ORCH_EXIT_POWEROFF = 100
ORCH_EXIT_REBOOT = 101
ORCH_EXIT_FAILED = 102
SANDBOX_POWEROFF, SANDBOX_REBOOT, SANDBOX_CRASHED = 0, 10, 11
WRAPPER = helpers.REPO / "tools" / "cairn-sandbox"
DEATH = "pid1-last-death.json"


@pytest.fixture
def cairn():
    b = helpers.build_dir() / "cairn"
    if not b.exists():
        pytest.fail(f"{b} missing: run `make` first (or `make test-integration`)")
    return b


@pytest.fixture
def dirs(tmp):
    storage, trust = tmp / "storage", tmp / "trust"
    storage.mkdir()
    trust.mkdir()
    return storage, trust


class Procs:
    """Processes started by a test, each in its own process group and marked
    with CAIRN_TEST_MARK in its environment; teardown kills the groups, then
    anything still carrying the mark (e.g. a namespace whose outer process
    died first), and waits until none is left."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.mark = f"cairn-test-{os.getpid()}-{tmp.name}"
        self.procs = []

    def start(self, argv, orch, **env):
        e = dict(os.environ, CAIRN_TEST_ORCH=orch, CAIRN_TEST_MARK=self.mark, **env)
        e.pop("CAIRN_CRASH_AT", None)
        e.pop("CAIRN_FAIL_AT", None)
        log = open(self.tmp / f"out-{len(self.procs)}.log", "w+")
        p = subprocess.Popen([str(a) for a in argv], stdout=log, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, env=e, start_new_session=True)
        p.log = log
        self.procs.append(p)
        return p

    def marked(self):
        needle = f"CAIRN_TEST_MARK={self.mark}".encode()
        out = []
        for d in Path("/proc").iterdir():
            try:
                if d.name.isdigit() and needle in (d / "environ").read_bytes().split(b"\0"):
                    out.append(int(d.name))
            except OSError:
                pass
        return out

    def kill_all(self):
        # Namespace inits first: the kernel ends their namespaces and their
        # parents reap them (killing a parent first would leave them to the
        # machine's init); then whatever still runs, by process group.
        for pid in self.marked():
            ns = status_field(pid, "NSpid")
            if ns and len(ns) > 1 and ns[-1] == "1":
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=30)
            p.log.close()
        end = time.monotonic() + 10
        while (left := self.marked()) and time.monotonic() < end:
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.05)
        assert not self.marked(), "processes left behind"


@pytest.fixture
def procs(tmp):
    ps = Procs(tmp)
    try:
        yield ps
    finally:
        ps.kill_all()


def output(p):
    p.log.flush()
    p.log.seek(0)
    return p.log.read()


def finish(p, timeout=20):
    """Exit status of p (it must end within timeout) and its output."""
    try:
        rc = p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"still running after {timeout}s; output:\n{output(p)}")
    return rc, output(p)


def ppid_and_state(pid):
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None, None
    fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)"
    return int(fields[1]), fields[0]


def children(pid):
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            ppid, _ = ppid_and_state(d.name)
            if ppid == pid:
                out.append(int(d.name))
    return out


def wait_for(what, fn, timeout=10):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = fn()
        if v:
            return v
        time.sleep(0.02)
    pytest.fail(f"timed out waiting for {what}")


def one_child(pid, what):
    return wait_for(what, lambda: (children(pid) or [None])[0])


def sandbox_tree(outer):
    """(host pid of the namespace's PID 1, host pid of the orchestrator) under
    the `cairn --sandbox` process `outer`."""
    pid1 = one_child(outer, "the namespace's PID 1")
    orch = one_child(pid1, "the orchestrator")
    return pid1, orch


def status_field(pid, name):
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(name + ":"):
            return line.split(":", 1)[1].split()
    return None


def death(storage):
    return json.loads((storage / DEATH).read_text())


def sandbox_argv(cairn, storage, trust, *more):
    return [cairn, "--sandbox", "--storage", storage, "--trust", trust, *more]


# ---------------- exit statuses ----------------

@pytest.mark.parametrize("orch,want", [
    (f"exit:{ORCH_EXIT_POWEROFF}", SANDBOX_POWEROFF),
    (f"exit:{ORCH_EXIT_REBOOT}", SANDBOX_REBOOT),
])
def test_orderly_end_gives_its_status_and_no_death_record(cairn, dirs, procs, orch, want):
    storage, trust = dirs
    rc, out = finish(procs.start(sandbox_argv(cairn, storage, trust), orch))
    assert rc == want, out
    assert not (storage / DEATH).exists()


@pytest.mark.parametrize("orch,key,value,reason", [
    ("exit:3", "exit_code", 3, "exited with status 3"),
    ("exit:0", "exit_code", 0, "exited with status 0"),
    (f"exit:{ORCH_EXIT_FAILED}", "exit_code", ORCH_EXIT_FAILED, "start-up failed"),
    ("crash", "signal", signal.SIGSEGV, "SIGSEGV"),
])
def test_unexpected_end_is_recorded_then_crashed_status(cairn, dirs, procs, orch, key, value,
                                                        reason):
    storage, trust = dirs
    rc, out = finish(procs.start(sandbox_argv(cairn, storage, trust), orch))
    assert rc == SANDBOX_CRASHED, out
    d = death(storage)
    assert d[key] == value
    assert reason in d["reason"]
    assert d["sandbox"] is True
    assert d["pid"] == 2  # the orchestrator is the namespace's second process
    assert d["time"].endswith("Z") and abs(d["time_unix"] - time.time()) < 120
    assert sorted(os.listdir(storage)) == [DEATH, "run"]  # no temp file left behind


def test_kill9_of_orchestrator_reboots_with_record(cairn, dirs, procs):
    storage, trust = dirs
    p = procs.start(sandbox_argv(cairn, storage, trust), "sleep")
    pid1, orch = sandbox_tree(p.pid)
    assert status_field(pid1, "NSpid")[-1] == "1"
    ns_orch = int(status_field(orch, "NSpid")[-1])
    os.kill(orch, signal.SIGKILL)
    rc, out = finish(p)
    assert rc == SANDBOX_CRASHED, out
    d = death(storage)
    assert d["signal"] == signal.SIGKILL
    assert "SIGKILL" in d["reason"]
    assert d["pid"] == ns_orch
    assert "killed by signal 9" in out
    assert ppid_and_state(pid1) == (None, None), "the namespace's PID 1 is still there"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGPWR])
def test_signal_to_outer_process_reaches_orchestrator(cairn, dirs, procs, sig):
    # The "sleep" stand-in keeps default dispositions: the forwarded signal
    # kills it, and PID 1 records which one it was.
    storage, trust = dirs
    p = procs.start(sandbox_argv(cairn, storage, trust), "sleep")
    sandbox_tree(p.pid)
    os.kill(p.pid, sig)
    rc, out = finish(p)
    assert rc == SANDBOX_CRASHED, out
    assert death(storage)["signal"] == sig


def test_signal_before_orchestrator_exists_is_not_lost(cairn, dirs, procs):
    storage, trust = dirs
    p = procs.start(sandbox_argv(cairn, storage, trust), "sleep")
    # As soon as the namespace's PID 1 exists (cairn blocked the signals
    # before forking it; earlier, it would die of SIGTERM like any process):
    # mostly before the orchestrator has been forked.
    one_child(p.pid, "the namespace's PID 1")
    os.kill(p.pid, signal.SIGTERM)
    rc, out = finish(p)
    assert rc == SANDBOX_CRASHED, out
    assert death(storage)["signal"] == signal.SIGTERM


# ---------------- the namespace ----------------

def test_namespace_setup_and_clean_orchestrator(cairn, dirs, procs):
    storage, trust = dirs
    host_mounts = Path("/proc/self/mountinfo").read_text()
    p = procs.start(sandbox_argv(cairn, storage, trust), "sleep")
    pid1, orch = sandbox_tree(p.pid)
    # UTS: hostname "cairn" inside, the host's unchanged
    r = helpers.run(["nsenter", "-t", pid1, "-u", "hostname"])
    assert r.stdout.strip() == "cairn", r.stderr
    assert socket.gethostname() != "cairn"
    # fresh /proc (nosuid,nodev,noexec) and a tmpfs at the default statedir
    mounts = Path(f"/proc/{pid1}/mountinfo").read_text().splitlines()
    proc = [m for m in mounts if m.split()[4] == "/proc" and " - proc " in m]
    assert proc and all(f in proc[-1].split()[5] for f in ("nosuid", "nodev", "noexec"))
    state = [m for m in mounts if m.split()[4] == str(storage / "run")]
    assert state and " - tmpfs " in state[-1], mounts
    # nothing leaked to the host's mount table
    assert str(storage / "run") not in Path("/proc/self/mountinfo").read_text()
    assert Path("/proc/self/mountinfo").read_text() == host_mounts
    # the orchestrator starts clean: nothing blocked or ignored, own session
    assert int(status_field(orch, "SigBlk")[0], 16) == 0
    assert int(status_field(orch, "SigIgn")[0], 16) == 0
    assert int(Path(f"/proc/{orch}/stat").read_text().rsplit(")", 1)[1].split()[3]) == orch
    assert Path(f"/proc/{orch}/comm").read_text().strip() == "cairn-orch"


def test_statedir_option_created_and_mounted(cairn, dirs, procs, tmp):
    storage, trust = dirs
    sd = tmp / "state" / "deep"
    p = procs.start(sandbox_argv(cairn, storage, trust, "--statedir", sd), "sleep")
    pid1, _ = sandbox_tree(p.pid)
    mounts = Path(f"/proc/{pid1}/mountinfo").read_text().splitlines()
    assert any(m.split()[4] == str(sd) and " - tmpfs " in m for m in mounts), mounts
    assert sd.is_dir()


def test_orphans_are_reaped(cairn, dirs, procs):
    storage, trust = dirs
    p = procs.start(sandbox_argv(cairn, storage, trust), "sleep")
    pid1, orch = sandbox_tree(p.pid)
    # 30 processes whose parent exits at once: they become PID 1's children
    # (their output goes to /dev/null: an open capture pipe would make run() wait for them)
    script = ("i=0; while [ $i -lt 30 ]; do "
              "sh -c 'sleep 5 </dev/null >/dev/null 2>&1 &'; i=$((i+1)); done")
    r = helpers.run(["nsenter", "-t", pid1, "-p", "--", "sh", "-c", script])
    assert r.returncode == 0, r.stderr
    assert len(children(pid1)) > 1, "the orphans were not reparented to PID 1"

    def only_orch_left():
        return children(pid1) == [orch]
    wait_for("PID 1 to reap its orphans", only_orch_left, 30)
    assert p.poll() is None


def test_not_root_namespace_failure_is_reported(cairn, dirs, procs):
    # without CAP_SYS_ADMIN unshare fails: exit 1 with a reason, not a crash
    storage, trust = dirs
    nobody = 65534
    os.chmod(storage.parent, 0o755)
    # a copy nobody can reach: the build tree may sit in a 0700 directory
    # (a clone in `mktemp -d`)
    exe = storage.parent / "cairn"
    shutil.copy(str(cairn), str(exe))
    p = subprocess.run([str(exe), "--sandbox", "--storage", str(storage), "--trust", str(trust)],
                       capture_output=True, text=True, timeout=20,
                       preexec_fn=lambda: (os.setgid(nobody), os.setuid(nobody)))
    assert p.returncode == 1, p.stderr
    assert "unshare" in p.stderr and "needs root" in p.stderr


# ---------------- command line ----------------

@pytest.mark.parametrize("args,msg", [
    ([], "--storage DIR is required"),
    (["--storage", "{s}"], "--trust DIR is required"),
    (["--storage", "{s}/nope", "--trust", "{t}"], "--storage {s}/nope: No such file"),
    (["--storage", "{s}", "--trust", "{s}/x.json"], "--trust {s}/x.json: not a directory"),
    (["--storage", "{s}", "--trust", "{t}", "--storage", "{s}"], "--storage given twice"),
    (["--storage", "{s}", "--trust", "{t}", "--log-level", "loud"], "--log-level loud"),
    (["--storage", "{s}", "--trust", "{t}", "--admin-socket", "rel.sock"], "absolute"),
    (["--storage", "{s}", "--trust", "{t}", "--admin-socket", "/" + "x" * 120], "unix socket"),
    (["--storage", "{s}", "--trust", "{t}", "--statedir", "run"], "--statedir run"),
    (["--storage", "{s}", "--trust", "{t}", "extra"], "unexpected argument 'extra'"),
    (["--stor", "{s}"], "unknown option --stor"),
    (["--storage="], "--storage: empty value"),
    (["--storage"], "--storage needs a value"),
    (["--sandbox=yes"], "--sandbox takes no value"),
    (["--storage", "{s}", "--trust", "{t}"], "not PID 1"),
])
def test_usage_errors(cairn, dirs, args, msg):
    storage, trust = dirs
    (storage / "x.json").write_text("{}")
    fmt = {"s": storage, "t": trust}
    r = helpers.run([cairn, *[a.format(**fmt) for a in args]])
    assert r.returncode == 2, r.stderr
    assert msg.format(**fmt) in r.stderr


def test_help_and_version(cairn):
    r = helpers.run([cairn, "--help"])
    assert r.returncode == 0 and "--storage DIR" in r.stdout and "--sandbox" in r.stdout
    r = helpers.run([cairn, "--version"])
    assert r.returncode == 0 and r.stdout.startswith("cairn ")


# ---------------- the wrapper (stand-in bootloader) ----------------

def wrapper_argv(storage, trust, *pre):
    return ["sh", WRAPPER, *pre, "--", "--storage", storage, "--trust", trust]


def test_wrapper_reboots_until_max_boots(cairn, dirs, procs):
    storage, trust = dirs
    p = procs.start(wrapper_argv(storage, trust, "--max-boots", "3"), f"exit:{ORCH_EXIT_REBOOT}",
                    CAIRN_BIN=str(cairn))
    rc, out = finish(p, timeout=30)
    assert rc == SANDBOX_REBOOT, out
    assert out.count("cairn-sandbox: reboot (status 10)") == 2
    assert out.count("PID 1 up") == 3
    assert "--max-boots 3 reached" in out


def test_wrapper_reboots_after_crash_and_stops_on_poweroff(cairn, dirs, procs, tmp):
    # first boot crashes, the second powers off: a counter file tells them apart
    storage, trust = dirs
    fake = tmp / "cairn-twice"
    fake.write_text(f"""#!/bin/sh
n=$(cat {tmp}/boots 2>/dev/null || echo 0); echo $((n+1)) > {tmp}/boots
[ "$n" = 0 ] && export CAIRN_TEST_ORCH=crash
exec {cairn} "$@"
""")
    fake.chmod(0o755)
    p = procs.start(wrapper_argv(storage, trust), f"exit:{ORCH_EXIT_POWEROFF}", CAIRN_BIN=str(fake))
    rc, out = finish(p, timeout=30)
    assert rc == 0, out
    assert out.count("cairn-sandbox: reboot (status 11)") == 1
    assert (tmp / "boots").read_text().strip() == "2"
    assert death(storage)["signal"] == signal.SIGSEGV


def test_wrapper_forwards_sigterm_and_stops(cairn, dirs, procs):
    storage, trust = dirs
    p = procs.start(wrapper_argv(storage, trust), "sleep", CAIRN_BIN=str(cairn))
    sandbox_tree(one_child(p.pid, "cairn under the wrapper"))
    os.kill(p.pid, signal.SIGTERM)
    rc, out = finish(p)
    assert rc == SANDBOX_CRASHED, out  # the stand-in died of the forwarded SIGTERM
    assert death(storage)["signal"] == signal.SIGTERM
    assert "stopped (status 11)" in out and out.count("PID 1 up") == 1


def test_wrapper_usage(dirs):
    r = helpers.run(["sh", WRAPPER, "--max-boots", "0"])
    assert r.returncode == 2 and "--max-boots 0" in r.stderr
    r = helpers.run(["sh", WRAPPER], env=dict(os.environ, CAIRN_BIN="/nonexistent/cairn"))
    assert r.returncode == 1 and "/nonexistent/cairn" in r.stderr


# ---------------- a real PID 1, inside a PID namespace ----------------

@pytest.mark.parametrize("orch,sig", [
    (f"exit:{ORCH_EXIT_POWEROFF}", signal.SIGINT),  # reboot(RB_POWER_OFF) in a pid ns
    (f"exit:{ORCH_EXIT_REBOOT}", signal.SIGHUP),    # reboot(RB_AUTOBOOT) in a pid ns
    ("exit:7", signal.SIGHUP),
])
def test_real_pid1_path_in_pid_namespace(cairn, dirs, procs, orch, sig):
    # Without --sandbox, as pid 1 of a pid namespace, cairn takes the real
    # PID 1 path: early mounts (tolerating those that exist), kill all, sync,
    # unmount, reboot(2). In a child pid namespace the kernel turns reboot(2)
    # into the namespace's end with SIGHUP (restart) or SIGINT (power off).
    storage, trust = dirs
    host_mounts = Path("/proc/self/mountinfo").read_text()
    p = procs.start(["unshare", "--pid", "--mount", "--uts", "--fork", "--mount-proc",
                     "--kill-child", cairn, "--storage", storage, "--trust", trust], orch)
    rc, out = finish(p)
    assert rc in (-sig, 128 + sig), out
    assert "PID 1 up, orchestrator pid 2" in out
    assert ("power off" if sig == signal.SIGINT else "reboot") in out
    assert Path("/proc/self/mountinfo").read_text() == host_mounts
    if orch == "exit:7":
        d = death(storage)
        assert d["exit_code"] == 7 and d["sandbox"] is False
    else:
        assert not (storage / DEATH).exists()
