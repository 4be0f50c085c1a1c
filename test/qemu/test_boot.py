"""The real boot path (issue 6): Debian's U-Boot (qemu-x86) runs
tools/qemu/boot.cmd, which boots Debian's kernel with cairn as PID 1 from
the initramfs; storage on a virtio disk; the boot state in the disk's U-Boot
environment, written by cairn through libubootenv and by the boot script.

One device walks through the tests in order (a boot under TCG costs 10-20 s,
so they share it); each test starts from what the previous one left and
checks that first. Revisions: 1 committed by mkdisk; 2 live; 3 a reboot
update (new kernel command line) U-Boot boots as the try and cairn commits;
4 a reboot update whose app never gets READY; 5 a staged revision whose
files are removed before the boot; 6 a try whose cairn hangs.
"""
import os
import re
import subprocess

import pytest

import qdev
from conftest import GROUPS, base_containers

FAST_FAIL = [{"name": "platform", "timeout_s": 60}, {"name": "app", "timeout_s": 8}]


@pytest.fixture(scope="module")
def dev(art, template):
    d = qdev.QDevice(art, qdev.new_root("cairn-qemu-boot-"), template)
    try:
        yield d
    finally:
        d.close()


def booted(d):
    """The device up with every goal met (boots it if a test left it down)."""
    if not d.running():
        d.boot()
    return d.wait_ready()


def uboot_lines(d):
    return [line for line in d.vm.serial().splitlines() if line.startswith("cairn-boot:")]


def kernel_cmdline(d):
    m = re.search(r"\] Command line: (.*)", d.vm.serial())
    assert m, d.vm.tail()
    return m.group(1).strip()


def test_first_boot_meets_every_goal_through_the_control_api(dev):
    st = dev.boot().wait_ready()
    assert st["revision"] == 1 and st["committed"] == 1 and st["try"] is None, st
    assert st["containers"] == {"total": 2, "ready": 2}, st
    cs = dev.containers()
    assert cs["net"]["state"] == "STARTED" and cs["app"]["state"] == "READY", cs
    # the real thing: U-Boot chose revision 1, the kernel ran cairn as PID 1 off
    # the initramfs, the storage is the virtio disk's second partition
    assert any("booting revision 1 (chosen 1, committed 1)" in x for x in uboot_lines(dev))
    cmd = kernel_cmdline(dev)
    assert "cairn.storage=/dev/vda2" in cmd and cmd.endswith("cairn.rev=1"), cmd
    log = dev.vm.serial()
    assert "Run /sbin/cairn-qemu-agent as init process" in log
    assert "storage /dev/vda2 (ext4) mounted on /storage" in log
    assert "bsp.modules" in log and "mounted on /lib/modules" in log
    assert "boot state (uboot:/etc/fw_env.config): committed 1" in log


def test_live_update_inside_the_vm(dev):
    booted(dev)
    pids = {n: c["pid"] for n, c in dev.containers().items()}
    out = dev.build(2, base_containers(dev.art, app_rootfs=dev.variant("v2")), GROUPS)
    body = dev.sideload(out)
    assert body["state"] == "DOWNLOADING" and len(body["missing"]) == 1, body
    dev.run(2)
    r = dev.wait_rev(2, ("DONE", "FAILED"), 60)
    assert r["state"] == "DONE" and r["committed"] and r["running"], r
    cs = dev.containers()
    assert cs["net"]["pid"] == pids["net"], "net was restarted by a live update"
    assert cs["app"]["pid"] != pids["app"] and cs["app"]["state"] == "READY", cs
    assert dev.vm.boots == 1, "a live update rebooted"
    assert dev.api("GET", "/v1/status")[1]["committed"] == 2


def signing_key_in_effect(dev):
    """A build server's key S, named by a keys document (serial 1) the
    roots signed, put into effect over the control API: S's private key."""
    s = os.path.join(dev.root, "s1")
    k = os.path.join(dev.root, "keys1")
    if not os.path.exists(s):
        subprocess.run([dev.art.pack, "keygen", s], check=True, stdout=subprocess.DEVNULL)
        subprocess.run([dev.art.pack, "keys", k, os.path.join(s, "signing.pub"), "--serial", "1"],
                       check=True, stdout=subprocess.DEVNULL)
        subprocess.run([dev.art.pack, "sign", k, "--key", dev.art.key], check=True,
                       stdout=subprocess.DEVNULL)
    with open(os.path.join(k, "keys.json")) as f, open(os.path.join(k, "keys.sig")) as g:
        st, body = dev.api("PUT", "/v1/keys", {"document": f.read(), "signature": g.read()},
                           retries=2)
    assert st == 200 and body["serial"] == 1, (st, body)
    return os.path.join(s, "signing.key")


def test_reboot_update_is_booted_as_a_try_by_uboot_and_committed(dev):
    booted(dev)
    # signed by a signing key alone: PID 1's early step must count the keys
    # document too, or the try boots without its BSP modules
    skey = signing_key_in_effect(dev)
    out = dev.build(3, base_containers(dev.art, app_rootfs=dev.variant("v2")), GROUPS,
                    cmdline_extra="qemu_test=rev3")
    os.unlink(os.path.join(out, "revision.sig"))
    subprocess.run([dev.art.pack, "sign", out, "--key", skey], check=True,
                   stdout=subprocess.DEVNULL)
    assert dev.sideload(out)["state"] == "INSTALLED"   # same objects, new BSP command line
    dev.run(3)
    dev.wait_down(90, "the reboot into the try")
    assert "reboot: Restarting system" in dev.vm.serial()
    env = dev.env()
    assert env.get("cairn_rev") == "2" and env.get("cairn_try") == "3", env
    assert "cairn_trying" not in env, env          # staged, not taken yet
    dev.boot()
    lines = uboot_lines(dev)
    assert any("try 3 marked taken" in x for x in lines), lines
    assert any("booting revision 3 (chosen 3, committed 2)" in x for x in lines), lines
    cmd = kernel_cmdline(dev)
    assert "qemu_test=rev3" in cmd and cmd.endswith("cairn.rev=3"), cmd
    r = dev.wait_rev(3, ("DONE", "FAILED"), 120)
    log = dev.vm.serial()
    assert "bsp.modules" in log and "mounted on /lib/modules" in log, log[-3000:]
    assert r["state"] == "DONE" and r["running"] and r["committed"], r
    st = dev.wait_ready()
    assert st["revision"] == 3 and st["committed"] == 3 and st["try"] is None, st
    dev.kill()       # cairn wrote the commit: the environment says so right away
    assert dev.env() == {"cairn_rev": "3"}, dev.env()


def test_reboot_update_whose_app_never_gets_ready_falls_back_to_the_committed(dev):
    booted(dev)
    out = dev.build(4, base_containers(dev.art, app_exec=qdev.NEVER, app_rootfs=dev.variant("v4")),
                    FAST_FAIL, cmdline_extra="qemu_test=rev4")
    dev.sideload(out)
    dev.run(4)
    dev.wait_down(90, "the reboot into the try")
    dev.boot(ready=False)
    dev.vm.wait_serial(r"booting revision 4 \(chosen 4, committed 3\)", 30)
    # the try fails its goal, cairn records why and reboots; U-Boot boots 3
    dev.wait_down(180, "the reboot after the failed try")
    dev.boot()
    assert any("booting revision 3 (chosen 3, committed 3)" in x for x in uboot_lines(dev))
    st = dev.wait_ready()
    assert st["revision"] == 3 and st["committed"] == 3, st
    r = dev.revision_known(4)
    assert r["state"] == "FAILED", r
    f = r["failure"]
    assert f["reason"] == "goal-timeout" and f["container"] == "app" and f["goal"] == "READY", f
    assert any("app-never-ready" in line for line in f["log"]), f["log"]


def test_staged_revision_with_missing_files_falls_back_in_the_same_boot(dev):
    booted(dev)
    out = dev.build(5, base_containers(dev.art, app_rootfs=dev.variant("v2")), GROUPS,
                    cmdline_extra="qemu_test=rev5")
    dev.sideload(out)
    dev.run(5)
    dev.wait_down(90, "the reboot into the try")
    with dev.storage(writable=True) as s:
        assert os.path.exists(os.path.join(s, "boot/5/vmlinuz"))
        os.unlink(os.path.join(s, "boot/5/vmlinuz"))
    dev.boot()
    lines = uboot_lines(dev)
    i = next(i for i, x in enumerate(lines) if "revision 5: no /boot/5/vmlinuz" in x)
    assert "booting revision 3 (chosen 5, committed 3)" in lines[i + 1], lines
    st = dev.wait_ready()   # in this same qemu run: -no-reboot would have ended it
    assert st["revision"] == 3 and st["committed"] == 3 and st["try"] is None, st
    r = dev.revision_known(5)
    assert r["state"] == "FAILED" and r["failure"]["reason"] == "interrupted", r


def test_try_whose_cairn_hangs_is_reset_by_the_watchdog(dev):
    booted(dev)
    # never READY, with a long timeout: only the watchdog can end this try
    groups = [{"name": "platform", "timeout_s": 60}, {"name": "app", "timeout_s": 300}]
    out = dev.build(6, base_containers(dev.art, app_exec=qdev.NEVER), groups,
                    cmdline_extra="cairn.test_hang=1 cairn.watchdog_s=4")
    dev.sideload(out)
    dev.run(6)
    dev.wait_down(90, "the reboot into the try")
    dev.boot(ready=False)
    dev.vm.wait_serial(r"booting revision 6 \(chosen 6, committed 3\)", 30)
    dev.vm.wait_serial(r"cairn\.rev=6", 30)
    dev.wait_down(120, "the watchdog reset")
    tail = dev.vm.serial()
    assert "reboot: Restarting system" not in tail and "reboot: Power down" not in tail, \
        "the try ended in an orderly way, not by the watchdog\n" + dev.vm.tail()
    dev.boot()
    assert any("booting revision 3 (chosen 3, committed 3)" in x for x in uboot_lines(dev))
    st = dev.wait_ready()
    assert st["revision"] == 3 and st["committed"] == 3, st
    r = dev.revision_known(6)
    assert r["state"] == "FAILED" and r["failure"]["reason"] == "interrupted", r
