"""Helpers shared by the integration tests (imported by conftest.py and tests).

Everything here drives the real binaries from CAIRN_BUILD; nothing mocks them.
"""
import hashlib
import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BUSYBOX = Path("/bin/busybox")  # from busybox-static: runs in any rootfs
BUSYBOX_LINKS = ("sh", "sleep", "cat", "ls", "echo", "mount", "ps", "true", "false")
CREATED = "2026-01-01T00:00:00Z"
TIMEOUT = 120


def build_dir():
    """The build directory (make passes CAIRN_BUILD as an absolute path)."""
    return Path(os.environ.get("CAIRN_BUILD", REPO / "build")).resolve()


def run(argv, *, timeout=TIMEOUT, cwd=None, env=None, input=None):
    """Run argv (no shell); return the CompletedProcess with text output."""
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, env=env, input=input)


def pack(*args, **kw):
    """Run build/cairn-pack ARGS... from / (so relative paths in specs must
    resolve against the spec's directory, not the caller's)."""
    kw.setdefault("cwd", "/")
    return run([build_dir() / "cairn-pack", *args], **kw)


def pack_ok(*args, **kw):
    """cairn-pack that must succeed; the failure message shows its stderr."""
    r = pack(*args, **kw)
    assert r.returncode == 0, f"cairn-pack {' '.join(map(str, args))}: exit {r.returncode}\n{r.stderr}"
    return r


def keys_doc(out, serial, pubs, signers, threshold=None):
    """OUT holding a keys document naming pubs (cairn-pack keys), signed by
    each of signers in turn (cairn-pack sign): OUT/keys.json, OUT/keys.sig."""
    args = ["keys", out, "--serial", serial]
    if threshold is not None:
        args += ["--threshold", threshold]
    pack_ok(*args, *pubs)
    for k in signers:
        pack_ok("sign", out, "--key", k)
    return out


def make_rootfs(path, *, probe=True, extra=None):
    """A minimal container rootfs: busybox-static + the probe in bin/, a few
    busybox symlinks, the usual empty mount points. `extra` maps relative
    paths to bytes/str contents."""
    path = Path(path)
    for d in ("bin", "dev", "proc", "sys", "tmp", "run", "etc"):
        (path / d).mkdir(parents=True, exist_ok=True)
    shutil.copy2(BUSYBOX, path / "bin" / "busybox")
    for name in BUSYBOX_LINKS:
        (path / "bin" / name).symlink_to("busybox")
    if probe:
        shutil.copy2(build_dir() / "probe", path / "bin" / "probe")
    for rel, content in (extra or {}).items():
        f = path / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def container(name, rootfs, *, group="app", exec_=None, **more):
    """One entry of "containers" in a spec; `rootfs` is the objref, e.g.
    {"dir": "rootfs-a"} or {"tar": "/abs/img.tar"}."""
    c = {"name": name, "group": group, "rootfs": rootfs,
         "exec": exec_ or ["/bin/probe", "ready", "--", "sleep", "100000"]}
    c.update(more)
    return c


def write_spec(path, containers, *, revision=1, bsp=None, groups=None, created=CREATED):
    """Write a cairn-pack build spec (trails/REVISION.md, spec mode)."""
    doc = {"spec": "cairn-revision@1", "revision": revision, "created": created}
    if bsp is not None:
        doc["bsp"] = bsp
    if groups is not None:
        doc["groups"] = groups
    doc["containers"] = containers
    path = Path(path)
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return path


def object_path(out, digest):
    """OUT/objects/sha256/ab/<62 hex> for "sha256:<64 hex>"."""
    assert digest.startswith("sha256:") and len(digest) == 71, digest
    hexd = digest[7:]
    return Path(out) / "objects" / "sha256" / hexd[:2] / hexd[2:]


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return "sha256:" + h.hexdigest()


def revision_doc(out):
    return json.loads((Path(out) / "revision.json").read_text())


def squashfs_listing(image):
    """`unsquashfs -lln` lines: mode owner/group size date time path."""
    r = run(["unsquashfs", "-lln", image])
    assert r.returncode == 0, r.stderr
    return r.stdout.splitlines()


def flip_byte(path, offset=None):
    """Change one byte of a file in place (objects are read-only: root writes anyway)."""
    path = Path(path)
    size = path.stat().st_size
    offset = size // 2 if offset is None else offset
    os.chmod(path, path.stat().st_mode | stat.S_IWUSR)
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0x01]))
