"""What the qemu device is made of, built once into BUILD/qemu/ and rebuilt
when an input is newer (tools/qemu/README.md lists them):

  cairn-qemu-agent   the host-channel relay (agent.c)
  boot.scr           boot.cmd through mkimage -T script
  keys/, trust/      the qemu device's signing key and its trust directory
  initrd.img         tools/qemu/mkinitramfs (cairn, its libraries, modules)
  modules/<kver>/    /lib/modules/<kver> as hard links (the modules squashfs source)
  rootfs/            busybox + the probe, the demo containers' image
  bsp/               a revision holding only the BSP objects, built once per
                     initrd: later revisions name those objects by digest and
                     link them, so mksquashfs of 400 MB of modules runs once

and revisions with a BSP (`build_revision`) for make run, the tests and the
benchmark.
"""
import json
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.abspath(os.path.join(HERE, "../.."))
sys.path.insert(0, HERE)
import initramfs  # noqa: E402

CREATED = "2026-11-21T10:00:00Z"
# The qemu board's kernel command line (a revision's bsp.cmdline); boot.scr
# adds cairn.storage=/dev/vda2 before it and cairn.rev=N after it.
CMDLINE = ("console=ttyS0 panic=5 apparmor=0 rdinit=/sbin/cairn-qemu-agent "
           "cairn.modules=virtio_pci,virtio_blk,ext4,loop,squashfs,overlay,i6300esb,virtio_console "
           "cairn.watchdog_s=10")
CFLAGS = ["-std=gnu11", "-O2", "-Wall", "-Wextra", "-Werror", "-Wshadow",
          "-Wmissing-prototypes", "-Wformat=2", "-Wvla", "-D_FORTIFY_SOURCE=2", "-I", TOP]


def newer(out, *inputs):
    """True when `out` is missing or older than any input."""
    try:
        t = os.path.getmtime(out)
    except OSError:
        return True
    return any(os.path.getmtime(i) > t for i in inputs)


def run(argv, **kw):
    subprocess.run(argv, check=True, **kw)


class Artifacts:
    def __init__(self, build=None, quiet=False):
        self.build = os.path.abspath(build or os.environ.get("CAIRN_BUILD")
                                     or os.path.join(TOP, "build"))
        self.q = os.path.join(self.build, "qemu")
        self.quiet = quiet
        self.kver = initramfs.kernel_release()
        self.vmlinuz = "/boot/vmlinuz-" + self.kver
        self.pack = os.path.join(self.build, "cairn-pack")
        self.cairn = os.path.join(self.build, "cairn")
        self.probe = os.path.join(self.build, "probe")
        self.agent = os.path.join(self.q, "cairn-qemu-agent")
        self.boot_scr = os.path.join(self.q, "boot.scr")
        self.keys = os.path.join(self.q, "keys")
        self.key = os.path.join(self.keys, "signing.key")
        self.pub = os.path.join(self.keys, "signing.pub")
        self.trust = os.path.join(self.q, "trust")
        self.initrd = os.path.join(self.q, "initrd.img")
        self.initrd_report = os.path.join(self.q, "initrd.txt")
        self.modules = os.path.join(self.q, "modules")
        self.rootfs = os.path.join(self.q, "rootfs")
        self.bsp_out = os.path.join(self.q, "bsp")

    def say(self, msg):
        if not self.quiet:
            print("qemu-build: " + msg, flush=True)

    def ensure(self):
        for b in (self.pack, self.cairn, self.probe):
            if not os.path.exists(b):
                raise SystemExit("%s missing: run make first" % b)
        os.makedirs(self.q, exist_ok=True)
        self._agent()
        self._boot_scr()
        self._keys()
        self._initrd()
        self._modules()
        self._rootfs()
        self._bsp()
        return self

    def _agent(self):
        src = os.path.join(HERE, "agent.c")
        libs = [os.path.join(TOP, "lib", f) for f in ("util.c", "err.c")]
        if newer(self.agent, src, *libs, *(os.path.join(TOP, "lib", h) for h in
                                           ("cleanup.h", "util.h", "err.h"))):
            self.say("agent")
            run(["gcc", *CFLAGS, "-o", self.agent + ".tmp", src, *libs])
            run(["strip", self.agent + ".tmp"])
            os.rename(self.agent + ".tmp", self.agent)

    def _boot_scr(self):
        src = os.path.join(HERE, "boot.cmd")
        if newer(self.boot_scr, src):
            self.say("boot.scr")
            run(["mkimage", "-A", "x86", "-O", "linux", "-T", "script", "-C", "none",
                 "-n", "cairn boot", "-d", src, self.boot_scr + ".tmp"], stdout=subprocess.DEVNULL)
            os.rename(self.boot_scr + ".tmp", self.boot_scr)

    def _keys(self):
        if not os.path.exists(self.key):
            self.say("keys")
            shutil.rmtree(self.keys, ignore_errors=True)
            run([self.pack, "keygen", self.keys], stdout=subprocess.DEVNULL)
        os.makedirs(self.trust, exist_ok=True)
        dst = os.path.join(self.trust, "qemu.pub")
        if newer(dst, self.pub):
            shutil.copy(self.pub, dst)

    def _initrd(self):
        tool = os.path.join(HERE, "mkinitramfs")
        ins = [self.cairn, self.agent, os.path.join(self.trust, "qemu.pub"), tool,
               os.path.join(HERE, "initramfs.py"), os.path.join(HERE, "ubootenv.py")]
        if newer(self.initrd, *ins):
            self.say("initrd.img")
            out = subprocess.run([tool, "--out", self.initrd, "--cairn", self.cairn,
                                  "--agent", self.agent, "--trust", self.trust, "--kver", self.kver],
                                 check=True, stdout=subprocess.PIPE, text=True).stdout
            with open(self.initrd_report, "w") as f:
                f.write(out)
            if not self.quiet:
                print(out, end="")

    def _modules(self):
        """The qemu board's modules: BOARD_MODULES of /lib/modules/<kver> and
        what they depend on (hard links), with depmod's metadata for that set."""
        top = os.path.join(self.modules, "lib", "modules")
        if os.path.isdir(os.path.join(top, self.kver)):
            return
        self.say("modules tree")
        tmp = self.modules + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        src = "/lib/modules/" + self.kver
        dst = os.path.join(tmp, "lib", "modules", self.kver)
        for rel in board_modules(src):
            os.makedirs(os.path.dirname(os.path.join(dst, rel)), exist_ok=True)
            try:
                os.link(os.path.join(src, rel), os.path.join(dst, rel))
            except OSError:
                shutil.copy(os.path.join(src, rel), os.path.join(dst, rel))
        for f in ("modules.order", "modules.builtin", "modules.builtin.modinfo"):
            shutil.copy(os.path.join(src, f), os.path.join(dst, f))
        run(["depmod", "-b", tmp, self.kver])
        shutil.rmtree(self.modules, ignore_errors=True)
        os.rename(tmp, self.modules)

    def _rootfs(self):
        marker = os.path.join(self.rootfs, "bin/probe")
        if not newer(marker, self.probe, "/bin/busybox"):
            return
        self.say("rootfs")
        make_rootfs(self.rootfs, self.probe)

    def _bsp(self):
        doc = os.path.join(self.bsp_out, "revision.json")
        mods = os.path.join(self.modules, "lib", "modules")
        spec = {"spec": "cairn-revision@1", "revision": 1, "created": CREATED,
                "bsp": {"kernel": {"file": self.vmlinuz}, "initrd": {"file": self.initrd},
                        "modules": {"dir": mods}, "cmdline": CMDLINE},
                "containers": [{"name": "x", "group": "app", "rootfs": {"dir": self.rootfs},
                                "exec": ["/bin/true"]}]}
        path = os.path.join(self.q, "bsp.spec.json")
        text = json.dumps(spec, indent=1)
        try:
            with open(path) as f:
                same = f.read() == text
        except OSError:
            same = False
        if same and not newer(doc, self.initrd, self.vmlinuz, self.key,
                              os.path.join(mods, self.kver, "modules.dep")):
            return
        self.say("bsp objects (kernel, initrd, modules squashfs)")
        shutil.rmtree(self.bsp_out, ignore_errors=True)
        with open(path, "w") as f:
            f.write(text)
        run([self.pack, "build", path, "--out", self.bsp_out], stdout=subprocess.DEVNULL)

    # ---- revisions ----
    def bsp(self, cmdline=None, kernel=None):
        """The BSP part of a spec: the prebuilt objects by digest, and a
        command line (default CMDLINE). `kernel` = a file for another kernel object."""
        with open(os.path.join(self.bsp_out, "revision.json")) as f:
            b = json.load(f)["bsp"]
        b = {k: b[k] for k in ("kernel", "initrd", "modules")}
        if kernel:
            b["kernel"] = {"file": kernel}
        b["cmdline"] = CMDLINE if cmdline is None else cmdline
        return b

    def build_revision(self, out, revision, containers, groups=None, bsp=None):
        """Build and sign a revision into `out`; the prebuilt BSP objects are
        hard-linked into out's store. `containers` may use {"dir": ...}."""
        bsp = bsp or self.bsp()
        os.makedirs(out, exist_ok=True)
        for ref in bsp.values():
            if isinstance(ref, dict) and "object" in ref:
                link_object(self.bsp_out, out, ref["object"])
        spec = {"spec": "cairn-revision@1", "revision": revision, "created": CREATED, "bsp": bsp}
        if groups:
            spec["groups"] = groups
        spec["containers"] = containers
        path = out.rstrip("/") + ".spec.json"
        with open(path, "w") as f:
            json.dump(spec, f, indent=1)
        run([self.pack, "build", path, "--out", out], stdout=subprocess.DEVNULL)
        run([self.pack, "sign", out, "--key", self.key], stdout=subprocess.DEVNULL)
        return out


# What the qemu board's modules squashfs holds (prefixes under kernel/), plus
# their dependencies: its virtual hardware, the filesystems and the network
# pieces containers use. Debian's whole tree (400 MB) would cost seconds of
# hashing per boot under TCG for modules nobody loads.
BOARD_MODULES = (
    "drivers/virtio/", "drivers/block/", "drivers/char/", "drivers/watchdog/",
    "drivers/net/virtio_net.ko", "drivers/net/veth.ko", "drivers/net/tun.ko",
    "drivers/net/dummy.ko", "drivers/net/macvlan.ko", "drivers/net/ipvlan/",
    "drivers/net/vxlan/", "drivers/net/wireguard/",
    "fs/ext4/", "fs/jbd2/", "fs/squashfs/", "fs/overlayfs/", "fs/fat/", "fs/nls/",
    "fs/fuse/", "fs/isofs/", "fs/mbcache.ko",
    "net/netfilter/", "net/ipv4/", "net/ipv6/", "net/bridge/", "net/8021q/", "net/llc/",
    "net/sched/", "net/vmw_vsock/", "net/packet/", "lib/", "crypto/", "arch/x86/crypto/")


def board_modules(src):
    """Paths (relative to /lib/modules/<kver>) of BOARD_MODULES and their deps."""
    deps = {}
    with open(os.path.join(src, "modules.dep")) as f:
        for line in f:
            mod, _, rest = line.partition(":")
            deps[mod] = rest.split()
    want = [m for m in deps if m.startswith("kernel/") and m[7:].startswith(BOARD_MODULES)]
    seen = set()
    while want:
        m = want.pop()
        if m not in seen:
            seen.add(m)
            want.extend(deps.get(m, []))
    return sorted(seen)


def object_file(store, digest):
    hexd = digest.split(":", 1)[1]
    return os.path.join(store, "objects", "sha256", hexd[:2], hexd[2:])


def link_object(src_store, dst_store, digest):
    src, dst = object_file(src_store, digest), object_file(dst_store, digest)
    if os.path.exists(dst):
        return
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy(src, dst)


def make_rootfs(path, probe):
    """busybox-static + the probe, and the directories lxc needs."""
    tmp = path + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    for d in ("bin", "proc", "sys", "dev", "tmp", "run/cairn", "data", "etc"):
        os.makedirs(os.path.join(tmp, d))
    shutil.copy("/bin/busybox", os.path.join(tmp, "bin/busybox"))
    shutil.copy(probe, os.path.join(tmp, "bin/probe"))
    for a in ("sh", "sleep", "cat", "ls", "echo", "date", "tee", "mkdir", "touch", "true"):
        os.symlink("busybox", os.path.join(tmp, "bin", a))
    with open(os.path.join(tmp, "etc/passwd"), "w") as f:
        f.write("root:x:0:0:root:/:/bin/sh\n")
    shutil.rmtree(path, ignore_errors=True)
    os.rename(tmp, path)


def demo_containers(rootfs):
    """The demo device of tools/demo (three groups, one container each)."""
    loop = ("trap 'exit 0' TERM; n=0; while true; do n=$((n+1)); echo hello $n | "
            "tee -a /data/count; sleep 5; done")
    return [
        {"name": "net", "group": "platform", "rootfs": {"dir": rootfs},
         "exec": ["/bin/probe", "echo", "net up", "--", "sleep", "9999999"], "status_goal": "STARTED"},
        {"name": "broker", "group": "middleware", "rootfs": {"dir": rootfs},
         "exec": ["/bin/probe", "ready", "--", "sleep", "9999999"], "status_goal": "READY"},
        {"name": "hello", "group": "app", "rootfs": {"dir": rootfs},
         "exec": ["/bin/sh", "-c", loop], "status_goal": "STARTED",
         "volumes": [{"name": "data", "path": "/data", "persistence": "permanent"}]},
    ]


DEMO_GROUPS = [{"name": "platform", "timeout_s": 30}, {"name": "middleware", "timeout_s": 30},
               {"name": "app", "timeout_s": 60}]
