"""Build an initramfs (newc cpio, compressed) from a list of parts, without
root and reproducibly: every entry is owned by 0:0 with mtime 0, entries are
sorted, device nodes are written into the archive (no mknod).

Used by tools/qemu/mkinitramfs (cairn's) and test/bench/boot/qemu (the busybox
baseline's). Each added file is counted in a "part" so the size report can
say where the bytes go.
"""
import os
import re
import shutil
import stat
import subprocess
import tempfile


class Image:
    def __init__(self):
        self.entries = {}      # path -> (mode, data bytes, rdev major, rdev minor)
        self.parts = {}        # part name -> [files, bytes]

    # ---- entries ----
    def _parents(self, path):
        d = os.path.dirname(path)
        while d not in ("", "/") and d not in self.entries:
            self.entries[d] = (stat.S_IFDIR | 0o755, b"", 0, 0)
            d = os.path.dirname(d)

    def dir(self, path, mode=0o755):
        path = path.rstrip("/")
        self._parents(path)
        self.entries[path] = (stat.S_IFDIR | mode, b"", 0, 0)

    def data(self, path, data, part, mode=0o644):
        self._parents(path)
        self.entries[path] = (stat.S_IFREG | mode, data, 0, 0)
        p = self.parts.setdefault(part, [0, 0])
        p[0] += 1
        p[1] += len(data)

    def file(self, path, src, part, mode=None):
        with open(src, "rb") as f:
            data = f.read()
        if mode is None:
            mode = os.stat(src).st_mode & 0o777
        self.data(path, data, part, mode)

    def symlink(self, path, target):
        self._parents(path)
        self.entries[path] = (stat.S_IFLNK | 0o777, target.encode(), 0, 0)

    def chardev(self, path, major, minor, mode=0o600):
        self._parents(path)
        self.entries[path] = (stat.S_IFCHR | mode, b"", major, minor)

    def elf(self, path, src, part, lib_part="shared libraries"):
        """An executable, stripped, and every shared library ldd lists for it
        (under the paths ldd prints, with the real file's bytes), dynamic
        loader included."""
        with tempfile.TemporaryDirectory(prefix="cairn-strip-") as tmp:
            out = os.path.join(tmp, "bin")
            subprocess.run(["strip", "-o", out, src], check=True)
            self.file(path, out, part, 0o755)
        self._libraries(src, lib_part)

    def _libraries(self, binary, part):
        """Every shared library ldd lists for binary, not already in."""
        for lib in ldd(binary):
            if lib not in self.entries:
                self.file(lib, os.path.realpath(lib), part, 0o755)

    def library(self, soname, part, lib_part="shared libraries"):
        """A shared library a program loads at run time (dlopen: ldd does
        not list it), found as the dynamic loader would, and every library
        it needs."""
        path = soname_path(soname)
        if path not in self.entries:
            self.file(path, os.path.realpath(path), part, 0o755)
        self._libraries(path, lib_part)

    # ---- kernel modules ----
    def modules(self, kver, names, part="kernel modules"):
        """Each module of `names` and its dependencies (softdeps included), as
        modprobe resolves them, uncompressed, with a modules.dep (and alias,
        softdep, builtin) covering exactly what is shipped."""
        base = "/lib/modules/%s" % kver
        shipped = set()
        for name in names:
            out = subprocess.run(["modprobe", "--show-depends", "-S", kver, name],
                                 check=True, capture_output=True, text=True).stdout
            for line in out.splitlines():
                w = line.split()
                if w and w[0] == "insmod":
                    rel = os.path.relpath(w[1], base)
                    if rel.endswith((".xz", ".zst", ".gz")):
                        raise SystemExit("%s is compressed: this kernel cannot load it" % w[1])
                    shipped.add(rel)
        for rel in sorted(shipped):
            self.file(base + "/" + rel, os.path.join(base, rel), part, 0o644)
        mods = {os.path.basename(r)[:-3].replace("-", "_") for r in shipped}
        deps = []
        with open(os.path.join(base, "modules.dep")) as f:
            for line in f:
                if line.split(":", 1)[0] in shipped:
                    deps.append(line)
        self.data(base + "/modules.dep", "".join(deps).encode(), part)
        alias = []
        with open(os.path.join(base, "modules.alias")) as f:
            for line in f:
                w = line.split()
                if len(w) == 3 and w[0] == "alias" and w[2].replace("-", "_") in mods:
                    alias.append(line)
        self.data(base + "/modules.alias", "".join(alias).encode(), part)
        for extra in ("modules.softdep", "modules.builtin"):
            self.file(base + "/" + extra, os.path.join(base, extra), part, 0o644)
        return sorted(shipped)

    # ---- output ----
    def cpio(self):
        out = bytearray()
        ino = 1
        for path in sorted(self.entries):
            mode, data, major, minor = self.entries[path]
            name = path.lstrip("/").encode() + b"\0"
            nlink = 2 if stat.S_ISDIR(mode) else 1
            hdr = "070701" + "".join("%08x" % v for v in (
                ino, mode, 0, 0, nlink, 0, len(data), 0, 0, major, minor, len(name), 0))
            out += hdr.encode() + name
            out += b"\0" * (-len(out) % 4)
            out += data
            out += b"\0" * (-len(out) % 4)
            ino += 1
        trailer = b"TRAILER!!!\0"
        out += ("070701" + "%08x" % 0 * 11 + "%08x" % len(trailer) + "%08x" % 0).encode() + trailer
        out += b"\0" * (-len(out) % 512)
        return bytes(out)

    def write(self, path, compress="zstd"):
        raw = self.cpio()
        cmd = {"zstd": ["zstd", "-19", "-q", "-c"], "gzip": ["gzip", "-9", "-n", "-c"]}[compress]
        comp = subprocess.run(cmd, input=raw, check=True, capture_output=True).stdout
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(comp)
        os.rename(tmp, path)
        return len(raw), len(comp)

    def report(self, raw, comp, out=print):
        """Parts and sizes: each part's share of the uncompressed archive,
        then the totals."""
        for name, (n, size) in sorted(self.parts.items(), key=lambda kv: -kv[1][1]):
            out("  %-22s %4d files %9.1f KiB" % (name, n, size / 1024))
        out("  %-24s %4d entries %7.1f KiB uncompressed, %.1f KiB compressed (%.2fx)"
            % ("total", len(self.entries), raw / 1024, comp / 1024, raw / comp))


def ldd(binary):
    """Absolute paths of the shared objects `binary` loads (ldd's view)."""
    out = subprocess.run(["ldd", binary], capture_output=True, text=True)
    if out.returncode != 0:
        if "not a dynamic executable" in out.stdout + out.stderr:
            return []
        raise SystemExit("ldd %s: %s" % (binary, out.stderr.strip()))
    libs = []
    for line in out.stdout.splitlines():
        m = re.match(r"\s*(?:\S+ => )?(/\S+) \(0x", line)
        if m:
            libs.append(m.group(1))
    return libs


def soname_path(soname):
    """Where the dynamic loader finds `soname` on this machine (ldconfig's
    cache, this architecture's entry)."""
    out = subprocess.run(["/sbin/ldconfig", "-p"], capture_output=True, text=True, check=True)
    for line in out.stdout.splitlines():
        m = re.match(r"\s*(\S+) \(([^)]*)\) => (\S+)$", line)
        if m and m.group(1) == soname and "x86-64" in m.group(2):
            return m.group(3)
    raise SystemExit("%s not found by ldconfig: install its package (tools/install-deps)" % soname)


def kernel_release(vmlinuz=None):
    """The release of Debian's installed kernel (linux-image-amd64)."""
    if vmlinuz:
        return os.path.basename(vmlinuz)[len("vmlinuz-"):]
    rels = sorted(os.listdir("/lib/modules"))
    kernels = [r for r in rels if os.path.exists("/boot/vmlinuz-" + r)]
    if not kernels:
        raise SystemExit("no /boot/vmlinuz-* with /lib/modules/*: install linux-image-amd64")
    return kernels[-1]


def which(name):
    p = shutil.which(name)
    if not p:
        raise SystemExit("%s not found" % name)
    return p
