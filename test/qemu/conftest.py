"""Fixtures for the qemu tests (test/qemu, `make test-qemu`, as root):
the qemu artifacts (tools/qemu/artifacts.py, built into CAIRN_BUILD/qemu)
and a template disk holding revision 1 of the test device."""
import os
import shutil
import subprocess
import time

import pytest

import qdev

GROUPS = [{"name": "platform", "timeout_s": 60}, {"name": "app", "timeout_s": 60}]


def base_containers(art, app_exec=None, app_rootfs=None):
    """The test device: `net` (platform, STARTED) and `app` (READY)."""
    rootfs = {"dir": art.rootfs}
    return [
        {"name": "net", "group": "platform", "rootfs": rootfs,
         "exec": ["/bin/probe", "echo", "net up", "--", "sleep", "9999999"], "status_goal": "STARTED"},
        {"name": "app", "group": "app", "rootfs": app_rootfs or rootfs,
         "exec": app_exec or qdev.READY, "status_goal": "READY"},
    ]


@pytest.fixture(scope="session")
def art():
    if os.geteuid() != 0:
        pytest.skip("qemu tests run as root (make test-qemu)")
    for tool in ("qemu-system-x86_64", "mkimage", "mke2fs", "losetup"):
        if not shutil.which(tool):
            pytest.fail("%s missing: run tools/install-deps" % tool)
    return qdev.artifacts.Artifacts(quiet=True).ensure()


@pytest.fixture(scope="session")
def template(art):
    """A disk with revision 1 of the test device committed."""
    root = qdev.new_root("cairn-qemu-tpl-")
    try:
        out = os.path.join(root, "rev1")
        art.build_revision(out, 1, base_containers(art), GROUPS)
        disk = os.path.join(root, "disk.img")
        subprocess.run([os.path.join(qdev.TOOLS, "mkdisk"), "--out", disk, "--boot-scr",
                        art.boot_scr, "--revision", out, "--trust", art.pub, "--pack", art.pack],
                       check=True, stdout=subprocess.DEVNULL)
        yield disk
    finally:
        shutil.rmtree(root, ignore_errors=True)


PREFIX = (os.environ.get("CAIRN_QEMU_TMP") or "/tmp") + "/cairn-qemu-"


@pytest.fixture(autouse=True)
def _no_loops_left():
    """No loop device of ours outlives a test."""
    yield
    end = time.monotonic() + 10  # a detached loop lingers while udev still has it open
    while qdev.our_loops(PREFIX) and time.monotonic() < end:
        time.sleep(0.2)
    loops = qdev.our_loops(PREFIX)
    assert not loops, "loop devices left: %s" % loops


@pytest.fixture(scope="session", autouse=True)
def _nothing_left():
    """No qemu of ours and no temp dir of ours outlives the session (a
    module's device lives across its tests)."""
    yield
    procs = qdev.our_qemus(PREFIX)
    dirs = [d for d in os.listdir(os.path.dirname(PREFIX))
            if d.startswith(os.path.basename(PREFIX))]
    assert not procs and not dirs, "left behind: qemu %s, dirs %s" % (procs, dirs)
