"""PID 1 and the LXC runtime, end to end: cairn --sandbox boots a signed
revision from real squashfs images with real LXC containers (issue 3)."""
import json
import os
import shutil
import signal
import time

import pytest

from device import Device, descendants, our_loops, our_mounts, proc_state, sandbox_device

SLEEP = ["/bin/probe", "sleep", "9999999"]  # exits 0 on SIGTERM


@pytest.fixture
def dev():
    with sandbox_device("cairn-boot-") as d:
        yield d


def boot(dev, containers, **kw):
    dev.install(dev.build(containers, **kw))
    return dev.boot()


def test_groups_start_in_order_and_ready_goal_needs_the_ready_call(dev):
    gate = ("while [ ! -e /data/go ]; do sleep 0.1; done; "
            "/bin/probe ready && exec /bin/probe sleep 9999999")
    boot(dev, [
        {"name": "plat", "group": "platform", "exec": SLEEP},
        {"name": "gate", "group": "middleware", "exec": ["/bin/sh", "-c", gate],
         "status_goal": "READY",
         "volumes": [{"name": "data", "path": "/data", "persistence": "permanent"}]},
        {"name": "app", "group": "app", "exec": SLEEP},
    ])
    dev.wait_state("gate", "STARTED")
    time.sleep(1)
    cs = dev.containers()
    assert cs["plat"]["state"] == "STARTED" and cs["plat"]["goal_met"]
    assert cs["gate"]["state"] == "STARTED" and not cs["gate"]["goal_met"]
    assert cs["app"]["state"] == "STOPPED", "app group started before middleware was READY"
    st, status = dev.api("GET", "/v1/status")
    assert st == 200 and status["phase"] == "starting"

    open(os.path.join(dev.storage, "volumes/permanent/gate/data/go"), "w").close()
    dev.wait_state("gate", "READY")
    dev.wait_state("app", "STARTED")
    dev.wait(lambda: dev.api("GET", "/v1/status")[1]["phase"] == "ready", 10, "phase ready")
    assert dev.stop() == 0


def test_goal_not_met_in_time_is_reported_with_a_reason(dev):
    boot(dev, [{"name": "lazy", "group": "app", "exec": SLEEP, "status_goal": "READY"}],
         groups=[{"name": "app", "timeout_s": 2}])
    c = dev.wait(lambda: (lambda c: c if c["reason"] else None)(dev.containers()["lazy"]),
                 10, "a reason for lazy")
    assert not c["goal_met"]
    assert "READY" in c["reason"], c
    assert dev.api("GET", "/v1/status")[1]["phase"] == "degraded"
    assert "lazy" in dev.log()


def test_crashing_container_restarts_with_growing_delays(dev):
    boot(dev, [{"name": "crashy", "group": "app", "restart": "on-failure",
                "exec": ["/bin/sh", "-c", "cat /proc/uptime >> /data/starts; exit 3"],
                "volumes": [{"name": "data", "path": "/data", "persistence": "permanent"}]}])
    starts = os.path.join(dev.storage, "volumes/permanent/crashy/data/starts")

    def times():
        try:
            with open(starts) as f:
                return [float(l.split()[0]) for l in f if l.strip()]
        except OSError:
            return []
    t = dev.wait(lambda: len(times()) >= 5 and times(), 30, "5 starts")
    gaps = [b - a for a, b in zip(t, t[1:])]
    # each gap is the backoff (0.5, 1, 2, 4 s) plus a container start, whose
    # time a loaded machine stretches: never sooner than the backoff
    # (/proc/uptime has 10 ms steps), and it grows
    for i, g in enumerate(gaps[:4]):
        assert g >= 0.5 * 2 ** i - 0.02, "restarted before its backoff: %s" % gaps
    assert gaps[3] > gaps[0] * 2, "backoff does not grow: %s" % gaps
    c = dev.containers()["crashy"]
    assert c["restarts"] >= 4
    assert "3" in c["reason"], c


def test_orphaned_grandchildren_are_reaped(dev):
    boot(dev, [{"name": "orphans", "group": "app",
                "exec": ["/bin/probe", "spawn-orphans", "100", "--", "sleep", "9999999"]}])
    dev.wait_state("orphans", "STARTED")

    def zombies():
        return [p for p in descendants(dev.proc.pid) if proc_state(p) == "Z"]
    time.sleep(2)
    dev.wait(lambda: not zombies(), 10, "no zombies (left: %s)" % zombies())


def test_sigterm_stops_every_container_and_leaves_nothing(dev):
    boot(dev, [{"name": "a", "group": "platform", "exec": SLEEP},
               {"name": "b", "group": "app", "exec": SLEEP,
                "volumes": [{"name": "v", "path": "/v", "persistence": "boot"}]}])
    dev.wait_state("b", "STARTED")
    pids = descendants(dev.proc.pid)
    assert len(pids) >= 4
    assert dev.stop(signal.SIGTERM) == 0
    for p in pids:
        assert proc_state(p) in (None,), "process %d survived" % p
    assert not our_mounts(dev.root) and not our_loops(dev.root)


def test_kill9_of_the_orchestrator_makes_pid1_reboot(dev):
    boot(dev, [{"name": "a", "group": "app", "exec": SLEEP}])
    dev.wait_state("a", "STARTED")
    os.kill(dev.orchestrator(), signal.SIGKILL)
    dev.proc.wait(20)
    assert dev.proc.returncode == 11, dev.log()[-3000:]
    with open(os.path.join(dev.storage, "pid1-last-death.json")) as f:
        death = json.load(f)
    assert "9" in json.dumps(death), death


def test_corrupted_object_is_never_started(dev):
    out = dev.build([{"name": "a", "group": "app", "exec": SLEEP}])
    dev.install(out)
    objs = [os.path.join(r, f) for r, _, fs in os.walk(os.path.join(dev.storage, "objects"))
            for f in fs]
    assert len(objs) == 1
    os.chmod(objs[0], 0o644)
    with open(objs[0], "r+b") as f:
        f.seek(100)
        b = f.read(1)
        f.seek(100)
        f.write(bytes([b[0] ^ 1]))
    dev.boot()
    dev.wait(lambda: os.path.exists(os.path.join(dev.storage, "last-boot-error.json")), 10,
             "boot error kept")
    with open(os.path.join(dev.storage, "last-boot-error.json")) as f:
        why = json.load(f)
    digest = os.path.basename(os.path.dirname(objs[0])) + os.path.basename(objs[0])
    assert digest in why["error"] and "digest" in why["error"], why
    assert dev.containers() == {}


def test_bad_signature_is_never_started(dev):
    out = dev.build([{"name": "a", "group": "app", "exec": SLEEP}])
    dev.install(out)
    sig = os.path.join(dev.storage, "trails/1/revision.sig")
    other = Device(os.path.join(dev.root, "other"))
    other_out = other.build([{"name": "a", "group": "app", "exec": SLEEP}])
    shutil.copy(os.path.join(other_out, "revision.sig"), sig)
    dev.boot()
    dev.wait(lambda: os.path.exists(os.path.join(dev.storage, "last-boot-error.json")), 10,
             "boot error kept")
    with open(os.path.join(dev.storage, "last-boot-error.json")) as f:
        why = json.load(f)
    assert "signature" in why["error"] and "not trusted" in why["error"], why
    assert dev.containers() == {}


def test_permanent_volume_survives_a_restart_and_boot_volume_does_not(dev):
    script = ("echo x >> /perm/f; echo x >> /boot/f; "
              "echo counts perm=$(wc -l < /perm/f) boot=$(wc -l < /boot/f); exec /bin/probe sleep 9999999")
    boot(dev, [{"name": "p", "group": "app", "exec": ["/bin/sh", "-c", script],
                "volumes": [{"name": "perm", "path": "/perm", "persistence": "permanent"},
                            {"name": "boot", "path": "/boot", "persistence": "boot"}]}])
    dev.wait(lambda: "counts perm=1 boot=1" in dev.ctr_log("p"), 20, "first boot counts")
    assert dev.stop() == 0
    dev.boot()
    dev.wait(lambda: "counts perm=2 boot=1" in dev.ctr_log("p"), 20, "second boot counts")
