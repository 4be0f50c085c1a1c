"""A cairn device in qemu for the tests (tools/qemu/README.md): its own copy
of a disk image, a VM on it (tools/qemu/vm.py, -no-reboot so every boot is
one qemu run the test sees), the control API through the virtio-serial
channel, and host-side access to the disk while qemu is not running.

Everything lives under one temp dir; close() kills qemu and removes it, and
no mount or loop device outlives a `storage()` block.
"""
import contextlib
import glob
import hashlib
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOOLS = os.path.abspath(os.path.join(HERE, "../../tools/qemu"))
sys.path.insert(0, TOOLS)
import artifacts  # noqa: E402
import ubootenv  # noqa: E402
import vm as vmmod  # noqa: E402

P2_OFFSET = 9 << 20          # tools/qemu/mkdisk: the storage partition
READY = ["/bin/probe", "ready", "--", "sleep", "9999999"]
NEVER = ["/bin/probe", "echo", "app-never-ready", "--", "sleep", "9999999"]


def sh(argv, check=True, **kw):
    return subprocess.run(argv, check=check, capture_output=True, text=True, **kw)


class QDevice:
    def __init__(self, art, root, template):
        self.art = art
        self.root = root
        os.makedirs(root, exist_ok=True)
        self.disk = os.path.join(root, "disk.img")
        sh(["cp", "--sparse=always", template, self.disk])
        self.vm = vmmod.VM(self.disk, os.path.join(root, "vm"))
        self.revs = {}

    # ---- machine ----
    def boot(self, ready=True, timeout=120):
        self.vm.start()
        if ready:
            self.wait_ready(timeout)
        return self

    def running(self):
        return self.vm.running()

    def wait_ready(self, timeout=120, rev=None):
        def ok():
            st = self.vm.status()
            if st and st.get("phase") == "ready" and (rev is None or st.get("revision") == rev):
                return st
            return None
        return self.vm.wait(ok, timeout, "all goals met" + (" on revision %s" % rev if rev else ""))

    def wait_down(self, timeout=90, what="the guest to reboot or power off"):
        """qemu's exit (-no-reboot: a guest reboot, reset or power-off)."""
        rc = self.vm.wait_exit(timeout)
        if rc is None:
            raise AssertionError("timed out after %ss waiting for %s\n%s"
                                 % (timeout, what, self.vm.tail()))
        return rc

    def poweroff(self, timeout=90):
        st, body = self.api("POST", "/v1/commands/poweroff")
        assert st == 202, (st, body)
        self.wait_down(timeout, "power-off")
        assert "reboot: Power down" in self.vm.serial(), self.vm.tail()

    def kill(self):
        self.vm.kill()

    def close(self):
        self.vm.kill()
        shutil.rmtree(self.root, ignore_errors=True)

    # ---- control API ----
    def api(self, method, path, body=None, timeout=30, retries=0):
        """One request; `retries` more tries when the channel fails (for
        requests that are idempotent: a GET, a document offer)."""
        for left in range(retries, -1, -1):
            try:
                return self.vm.api(method, path, body, timeout)
            except (OSError, http.client.HTTPException):
                if left == 0 or not self.vm.running():
                    raise

    def revision(self, rev):
        """For polling: None when the device does not know `rev` or did not
        answer within 3 s."""
        got = self.vm.try_api("GET", "/v1/revisions/%d" % rev)
        return got[1] if got and got[0] == 200 else None

    def revision_known(self, rev):
        """For a verdict: `rev` as the device knows it, None on 404; a
        guest slow to answer (TCG beside other guests) is waited for."""
        st, body = self.api("GET", "/v1/revisions/%d" % rev, retries=2)
        assert st in (200, 404), (st, body)
        return body if st == 200 else None

    def revisions(self):
        st, body = self.api("GET", "/v1/revisions", retries=2)
        assert st == 200, (st, body)
        return {r["revision"]: r for r in body}

    def containers(self):
        st, body = self.api("GET", "/v1/containers", retries=2)
        assert st == 200, (st, body)
        return {c["name"]: c for c in body}

    def wait_rev(self, rev, states, timeout):
        states = (states,) if isinstance(states, str) else states
        return self.vm.wait(lambda: (lambda r: r if r and r["state"] in states else None)(
            self.revision(rev)), timeout, "revision %d in %s" % (rev, states))

    def offer(self, out):
        with open(os.path.join(out, "revision.json")) as f:
            doc = f.read()
        with open(os.path.join(out, "revision.sig")) as f:
            sig = f.read()
        rev = json.loads(doc)["revision"]
        return self.api("PUT", "/v1/revisions/%d" % rev, {"document": doc, "signature": sig},
                        timeout=20, retries=2)

    def put_object(self, out, digest, timeout=120):
        with open(artifacts.object_file(out, digest), "rb") as f:
            data = f.read()
        return self.vm.api("PUT", "/v1/objects/" + digest, data, timeout=timeout)

    def sideload(self, out):
        """Offer, then upload what the device lacks: the offer's answer."""
        st, body = self.offer(out)
        assert st in (200, 202), (st, body)
        for m in body.get("missing", []):
            st2, b2 = self.put_object(out, m)
            assert st2 in (200, 201), (st2, b2)
        return body

    def run(self, rev, expect=202):
        st, body = self.api("POST", "/v1/revisions/%d/run" % rev)
        assert st == expect, (st, body)
        return body

    # ---- revisions ----
    def build(self, rev, containers, groups=None, cmdline_extra=None):
        """Build and sign revision `rev` into root/rev<N>; `cmdline_extra`
        appended to the board's command line makes its BSP differ."""
        cmd = artifacts.CMDLINE + (" " + cmdline_extra if cmdline_extra else "")
        out = os.path.join(self.root, "rev%d" % rev)
        self.art.build_revision(out, rev, containers, groups, self.art.bsp(cmdline=cmd))
        self.revs[rev] = out
        return out

    def variant(self, tag):
        """A rootfs that differs from the shared one (its own object)."""
        return rootfs_variant(self.art, os.path.join(self.root, "rootfs-" + tag), tag)

    # ---- the disk, from the host, qemu stopped ----
    @contextlib.contextmanager
    def storage(self, writable=False):
        """The storage partition mounted on the host (qemu must not run)."""
        assert not self.vm.running(), "the disk is qemu's while it runs"
        with mounted(self.disk, os.path.join(self.root, "mnt"), writable) as mnt:
            yield mnt

    def env(self):
        return ubootenv.read(self.disk)[1]


def rootfs_variant(art, path, tag):
    if not os.path.exists(path):
        shutil.copytree(art.rootfs, path, symlinks=True)
        with open(os.path.join(path, "etc/variant"), "w") as f:
            f.write(tag + "\n")
    return {"dir": path}


@contextlib.contextmanager
def mounted(image, mnt, writable=False, fsck=False):
    """Partition 2 of `image` on a loop device mounted at `mnt`; with
    `fsck`, its journal is replayed and the filesystem checked first
    (e2fsck: -E journal_only, then -fn must find nothing)."""
    os.makedirs(mnt, exist_ok=True)
    loop = sh(["losetup", "--find", "--show", "--offset", str(P2_OFFSET), image]).stdout.strip()
    try:
        if fsck:
            r = sh(["e2fsck", "-y", "-E", "journal_only", loop], check=False)
            assert r.returncode in (0, 1), ("journal replay", r.returncode, r.stdout, r.stderr)
            r = sh(["e2fsck", "-fn", loop], check=False)
            assert r.returncode == 0, ("filesystem not clean after a power cut",
                                       r.returncode, r.stdout[-3000:], r.stderr)
        sh(["mount", "-t", "ext4", "-o", "rw" if writable else "ro", loop, mnt])
        try:
            yield mnt
        finally:
            sh(["umount", mnt])
    finally:
        sh(["losetup", "-d", loop], check=False)


def uboot_sees(image, path):
    """Whether `path` exists on partition 2 as a reader that does not replay
    the ext4 journal (U-Boot) sees it: debugfs -c on a read-only loop."""
    loop = sh(["losetup", "--find", "--show", "--read-only", "--offset", str(P2_OFFSET),
               image]).stdout.strip()
    try:
        r = sh(["debugfs", "-c", "-R", "stat " + path, loop], check=False)
        return r.returncode == 0 and "Inode:" in r.stdout
    finally:
        sh(["losetup", "-d", loop], check=False)


def our_loops(path_prefix):
    out = []
    for bf in glob.glob("/sys/block/loop*/loop/backing_file"):
        try:
            with open(bf) as f:
                if f.read().strip().startswith(path_prefix):
                    out.append(bf)
        except OSError:
            pass
    return out


def our_qemus(path_prefix):
    """pids of qemu processes whose command line names a path under the prefix."""
    out = []
    for c in glob.glob("/proc/[0-9]*/cmdline"):
        try:
            with open(c, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"qemu-system-x86_64") and \
                any(path_prefix.encode() in a for a in argv):
            out.append(int(c.split("/")[2]))
    return out


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def store_consistent(storage):
    """What must hold on the store at any instant (power cut included):
    every object hashes to its name; every trails/<rev>/ has its document
    and signature and every object it names, with the declared size; every
    boot/<rev>/ holds a vmlinuz that is that revision's kernel object.
    Returns the installed revision numbers."""
    objdir = os.path.join(storage, "objects", "sha256")
    for fan in os.listdir(objdir):
        for name in os.listdir(os.path.join(objdir, fan)):
            got = sha256_file(os.path.join(objdir, fan, name))
            assert got == fan + name, "object %s%s holds %s" % (fan, name, got)
    revs = []
    trails = os.path.join(storage, "trails")
    for rev in os.listdir(trails):
        tdir = os.path.join(trails, rev)
        for need in ("revision.json", "revision.sig"):
            assert os.path.exists(os.path.join(tdir, need)), (rev, need)
        with open(os.path.join(tdir, "revision.json")) as f:
            doc = json.load(f)
        assert str(doc["revision"]) == rev
        refs = [c["rootfs"] for c in doc["containers"]] + \
            [v for k, v in doc.get("bsp", {}).items() if k != "cmdline"]
        for ref in refs:
            p = artifacts.object_file(storage, ref["object"])
            assert os.path.getsize(p) == ref["size"], (rev, ref)
        revs.append(int(rev))
    boot = os.path.join(storage, "boot")
    for rev in os.listdir(boot) if os.path.isdir(boot) else []:
        k = os.path.join(boot, rev, "vmlinuz")
        assert os.path.exists(k), "boot/%s without vmlinuz" % rev
        tdoc = os.path.join(trails, rev, "revision.json")
        if os.path.exists(tdoc):  # a boot/<rev> without its revision is allowed (BOOT.md)
            with open(tdoc) as f:
                kobj = json.load(f)["bsp"]["kernel"]["object"]
            assert os.stat(k).st_ino == os.stat(artifacts.object_file(storage, kobj)).st_ino, rev
    return sorted(revs)


def new_root(prefix):
    return tempfile.mkdtemp(prefix=prefix, dir=os.environ.get("CAIRN_QEMU_TMP"))
