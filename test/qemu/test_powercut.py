"""Power cuts (issue 6): qemu is SIGKILLed at random moments of an update —
while an object is uploaded, while the revision is installed, while the
switch runs, while cairn or U-Boot writes the environment, while the try
boots, while it commits — and booted again. After every cut:

- on the disk as the cut left it (a copy, its journal replayed by e2fsck,
  then `e2fsck -fn` must find nothing): every object hashes to its name,
  every installed revision is complete, the environment has a valid copy
  whose cairn_rev is installed with its boot files;
- on the next boot: U-Boot boots the committed revision or the try, cairn
  reaches every goal on a revision it verified, with no try pending; the
  interrupted revision is DONE only if it runs, otherwise absent, still
  downloading/installed (then the update is resumed with the same number)
  or FAILED `interrupted`/`not-booted`.

Two devices run side by side (each on its own disk); 20 cuts by default,
CAIRN_LONG=1 makes it 200 (CAIRN_CUTS=N overrides). Prints the cuts per
phase and the bad outcomes, which must be none.
"""
import os
import random
import subprocess
import threading
import time
import traceback

import pytest

import qdev
from conftest import GROUPS, base_containers

LIVE_PHASES = ("upload", "install", "switch", "env", "commit")
REBOOT_PHASES = ("upload", "install", "switch", "env", "boot", "commit")
LONG = os.environ.get("CAIRN_LONG") == "1"
CUTS = int(os.environ.get("CAIRN_CUTS", "200" if LONG else "20"))
WORKERS = 2


class Bad(Exception):
    pass


class Cutter:
    """One device driven through update after update, cut in the middle of
    each. `committed` is what the device must fall back to."""

    def __init__(self, art, template, name, seed, want):
        self.name = name
        self.template = template
        self.pending = None
        self.resume_state = None
        self.rng = random.Random(seed)
        self.root = qdev.new_root("cairn-qemu-cut-")
        self.dev = qdev.QDevice(art, self.root, template)
        self.want = want
        self.committed = 1
        self.extra = {1: None}    # kernel command line extra of each revision built
        self.next = 2
        self.resume = None
        self.cuts = {}
        self.bad = []
        self.checks = []
        self.upload_s = 1.0
        self.switch_s = {"live": 4.0, "reboot": 4.0}   # run -> DONE / -> qemu exit
        self.log = []

    def say(self, msg):
        self.log.append("%s: %s" % (self.name, msg))

    # ---- revisions ----
    def revision(self, rev):
        """Revision `rev`: its own app image; odd ones get their own kernel
        command line (a BSP change: a reboot update), even ones keep the
        committed revision's BSP (live)."""
        if rev in self.dev.revs:
            return self.dev.revs[rev]
        extra = "qemu_test=r%d" % rev if rev % 2 else self.extra[self.committed]
        self.extra[rev] = extra
        return self.dev.build(rev, base_containers(self.dev.art, app_rootfs=self.dev.variant(
            "r%d" % rev)), GROUPS, cmdline_extra=extra)

    # ---- the loop ----
    def run(self):
        i = 0
        while sum(self.cuts.values()) < self.want and len(self.bad) < 5:
            i += 1
            assert i < self.want * 4, "too many updates without a cut"
            try:
                self.boot_and_verify()
                self.update_with_cut()
            except Bad as ex:
                self.fail(str(ex))
            except (AssertionError, OSError) as ex:
                self.fail("%s\n%s" % (ex, traceback.format_exc(limit=3)))
        self.finish()

    def fail(self, what):
        self.bad.append(what + "\n--- console tail ---\n" + self.dev.vm.tail(4000) +
                        "\n--- qemu ---\n" + self.dev.vm.qemu_log())
        self.say("BAD: " + what.splitlines()[0])
        # go on from a fresh disk (revision numbers keep growing) so the
        # other cuts still count
        self.dev.kill()
        subprocess.run(["cp", "--sparse=always", self.template, self.dev.disk], check=True)
        self.committed, self.pending, self.resume = 1, None, None
        self.next = max(self.dev.revs) + 1 if self.dev.revs else 2   # built for another BSP

    def boot_and_verify(self):
        d = self.dev
        if not d.running():
            d.boot(ready=False)
        def ready():
            if "cairn-boot: nothing to boot" in d.vm.serial():
                raise Bad("U-Boot found nothing to boot after a cut")
            st = d.vm.status()
            return st if st and st.get("phase") == "ready" else None
        try:
            d.vm.wait(ready, 180, "all goals met")
            st = d.vm.wait(lambda: (lambda s: s if s and s["try"] is None and
                                    s["revision"] == s["committed"] else None)(d.vm.status()),
                           120, "no try pending")
        except AssertionError as ex:
            raise Bad("no complete revision running after a cut: %s" % str(ex).splitlines()[0])
        rev = st["revision"]
        if self.pending is not None:
            self.verify_after_cut(rev, self.pending)
        elif rev != self.committed:
            raise Bad("running %s, committed was %s" % (rev, self.committed))
        self.committed = rev
        self.pending = None

    def verify_after_cut(self, rev, r):
        allowed = {self.committed, r}
        if rev not in allowed:
            raise Bad("after a cut in revision %d's update: running %s, expected one of %s"
                      % (r, rev, sorted(allowed)))
        got = self.dev.revision_known(r)
        state = got["state"] if got else None
        self.say("  -> next boot runs %d; revision %d: %s%s" % (
            rev, r, state, " (%s)" % got["failure"]["reason"] if state == "FAILED" else ""))
        if rev == r:
            if state != "DONE" or not got["committed"]:
                raise Bad("revision %d runs but is %s" % (r, got))
            self.next = max(self.next, r + 1)
            self.resume = None
            return
        if state in ("DONE", "TESTING"):
            raise Bad("revision %d is %s but %s runs" % (r, state, rev))
        if state == "FAILED":
            reason = got["failure"]["reason"]
            if reason not in ("interrupted", "not-booted"):
                raise Bad("revision %d FAILED with %r after a cut" % (r, reason))
            self.resume = None
            self.next = max(self.next, r + 1)
        elif state in ("DOWNLOADING", "INSTALLED"):
            self.resume = r         # the same number goes on where it stopped
            self.resume_state = state
        elif state is None:
            self.resume = None      # never offered: the next update takes it again
            self.next = r
        else:
            raise Bad("revision %d in state %s after a cut" % (r, state))

    def update_with_cut(self):
        d = self.dev
        r = self.resume or self.next
        out = self.revision(r)
        kind = "reboot" if r % 2 else "live"
        phases = REBOOT_PHASES if kind == "reboot" else LIVE_PHASES
        if self.resume and self.resume_state == "INSTALLED":
            phases = [p for p in phases if p not in ("upload", "install")]
        # the phase cut least often so far (ties at random)
        least = min(self.cuts.get(kind + ":" + p, 0) for p in phases)
        phase = self.rng.choice([p for p in phases if self.cuts.get(kind + ":" + p, 0) == least])
        self.pending = r
        self.say("revision %d (%s), cut while: %s" % (r, kind, phase))
        cut = self.drive(r, out, kind, phase)
        if cut:
            self.say("  cut %s" % self.dev.vm.cut_why)
            self.cuts[kind + ":" + phase] = self.cuts.get(kind + ":" + phase, 0) + 1
            self.check_disk_async()

    def drive(self, r, out, kind, phase):
        """The update of revision r, with a cut armed for `phase`. True when
        qemu was killed while running."""
        d, vm = self.dev, self.dev.vm
        st, body = d.offer(out)
        if st not in (200, 202):
            raise Bad("offer of %d: %s %s" % (r, st, body))
        for m in body.get("missing", []):
            if phase == "upload":
                vm.cut_in(self.rng.uniform(0.05, self.upload_s))
            elif phase == "install":
                vm.cut_in(self.upload_s * self.rng.uniform(0.8, 1.3))
            t0 = time.monotonic()
            try:
                st2, b2 = d.put_object(out, m)
            except OSError:
                return self.wait_cut()
            if vm.cut_at or not vm.running():
                return self.wait_cut()
            self.upload_s = 0.5 * self.upload_s + 0.5 * (time.monotonic() - t0)
            if st2 not in (200, 201):
                raise Bad("upload of %s: %s %s" % (m, st2, b2))
        if phase in ("upload", "install"):
            if self.wait_cut(1.0):
                return True
            vm.disarm()
        d.wait_rev(r, "INSTALLED", 120)
        # console lines of a live switch: TESTING written, then the try
        # consumed in the environment, "trying (live)", the apply, then the
        # commit (environment, DONE, gc) within a few hundred ms
        if phase == "env" and kind == "live":
            vm.cut_on(r"revision %d: INSTALLED -> TESTING" % r, self.rng.uniform(0, 0.06))
        elif phase == "commit" and kind == "live":
            vm.cut_on(r"revision %d: trying \(live\)" % r, self.rng.uniform(0, 0.5))
        self.t_run = time.monotonic()
        if phase == "switch":
            vm.cut_in(self.rng.uniform(0, self.switch_s[kind]))
        try:
            d.run(r)
        except (OSError, AssertionError):
            return self.wait_cut()
        if kind == "live":
            return self.finish_live(r)
        return self.finish_reboot(r, phase)

    def switched(self, kind):
        """A switch ran to its end without a cut: how long it takes."""
        self.switch_s[kind] = 0.5 * self.switch_s[kind] + 0.5 * (time.monotonic() - self.t_run)

    def finish_live(self, r):
        d = self.dev
        end = time.monotonic() + 90
        while time.monotonic() < end:
            if not d.running():
                if self.wait_cut():
                    return True
                raise Bad("live update of %d: the machine went down on its own" % r)
            got = d.revision(r)
            if got and got["state"] in ("DONE", "FAILED"):
                if self.settled():
                    return True
                self.switched("live")
                return False
            time.sleep(0.1)
        raise Bad("live update of %d did not finish" % r)

    def finish_reboot(self, r, phase):
        d, vm = self.dev, self.dev.vm
        rc = vm.wait_exit(90)
        if rc is None:
            raise Bad("no reboot into the try of %d" % r)
        if vm.cut_at:
            return True
        vm.disarm()
        self.switched("reboot")
        arm = None
        if phase == "env":
            arm = (r"cairn-boot: env copy", self.rng.uniform(0, 0.25))
        elif phase == "commit":
            arm = (r"all groups reached their goals", self.rng.uniform(0, 0.3))
        vm.start(cut_on=arm)
        if phase == "boot":
            vm.cut_in(self.rng.uniform(0.5, 14))
        end = time.monotonic() + 120
        while time.monotonic() < end:
            if not d.running():
                return self.wait_cut()
            got = d.revision(r)
            if got and got["state"] in ("DONE", "FAILED"):
                return self.settled()
            time.sleep(0.2)
        raise Bad("reboot update of %d did not finish" % r)

    def settled(self):
        """The update finished: let a cut its console line triggered happen."""
        return self.dev.vm.settle() and self.wait_cut()

    def wait_cut(self, timeout=5.0):
        """After a kill was armed: wait for qemu to be gone. True if it was a cut."""
        vm = self.dev.vm
        rc = vm.wait_exit(timeout)
        if rc is None:
            return False
        vm._join_reader()
        return bool(vm.cut_at)

    # ---- the disk right after a cut ----
    def check_disk_async(self):
        copy = os.path.join(self.root, "cut-%d.img" % (len(self.checks) + 1))
        subprocess.run(["cp", "--sparse=always", self.dev.disk, copy], check=True)
        errs = []
        t = threading.Thread(target=self.check_disk, args=(copy, errs), daemon=True)
        t.start()
        self.checks.append((t, errs, self.log[-1]))

    @staticmethod
    def check_disk(copy, errs):
        try:
            env_cur, env = qdev.ubootenv.read(copy)
            if env_cur is None:
                errs.append("no valid environment copy")
                return
            c = env.get("cairn_rev", "0")
            # what U-Boot sees: the filesystem as it is, journal not replayed
            if not qdev.uboot_sees(copy, "/boot/%s/vmlinuz" % c):
                errs.append("U-Boot cannot see /boot/%s/vmlinuz of the committed revision "
                            "(still only in the ext4 journal): the next boot finds nothing "
                            "to boot" % c)
            with qdev.mounted(copy, copy + ".mnt", writable=False, fsck=True) as s:
                revs = qdev.store_consistent(s)
                c = int(c)
                if c not in revs or not os.path.exists(os.path.join(s, "boot", str(c), "vmlinuz")):
                    errs.append("cairn_rev=%s is not an installed revision with boot files (%s)"
                                % (c, revs))
        except (AssertionError, OSError, subprocess.CalledProcessError, ValueError) as ex:
            errs.append("disk after the cut: %r" % (ex,))
        finally:
            for p in (copy, copy + ".mnt"):
                if os.path.isdir(p):
                    os.rmdir(p)
                elif os.path.exists(p):
                    os.unlink(p)

    def finish(self):
        for t, errs, what in self.checks:
            t.join(600)
            if t.is_alive():
                self.bad.append("%s -> its check still runs after 600 s" % what)
            for e in errs:
                self.bad.append("%s -> %s" % (what, e))
        self.dev.kill()

    def close(self):
        for t, _, _ in self.checks:
            t.join(600)
        self.dev.close()


def test_power_cuts_during_updates_always_leave_a_complete_verified_revision(art, template,
                                                                           capsys):
    seed = int(os.environ.get("CAIRN_SEED", str(int(time.time()))))
    per = [CUTS // WORKERS + (1 if i < CUTS % WORKERS else 0) for i in range(WORKERS)]
    cutters = [Cutter(art, template, "dev%d" % i, seed + i, n) for i, n in enumerate(per)]
    errors = []

    def work(c):
        try:
            c.run()
        except Exception as ex:   # a harness failure, reported below
            errors.append("%s: %s\n%s" % (c.name, ex, traceback.format_exc()))

    t0 = time.monotonic()
    threads = [threading.Thread(target=work, args=(c,)) for c in cutters]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        for c in cutters:
            c.close()
    cuts, bad = {}, []
    for c in cutters:
        for k, v in c.cuts.items():
            cuts[k] = cuts.get(k, 0) + v
        bad += c.bad
    with capsys.disabled():
        print("\npower cuts: %d (seed %d, %.0f s): %s" % (
            sum(cuts.values()), seed, time.monotonic() - t0,
            ", ".join("%s %d" % kv for kv in sorted(cuts.items()))))
        if os.environ.get("CAIRN_VERBOSE") or bad:
            for c in cutters:
                print("\n".join(c.log))
        print("bad outcomes: %d" % len(bad))
        for b in bad:
            print("  " + b.replace("\n", "\n    "))
    assert not errors, "\n".join(errors)
    assert sum(cuts.values()) >= CUTS
    assert not bad
