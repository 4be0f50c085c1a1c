"""cairn-pack end to end: keygen, build (dir, tar, file sources), sign, verify,
and what a user sees when something is wrong. Drives build/cairn-pack; checks
the objects with hashlib and unsquashfs, independently of cairn's code."""
import json
import os
import re
import socket
import subprocess
import tarfile
import threading
from pathlib import Path

import pytest

from helpers import (container, flip_byte, object_path, pack, pack_ok, revision_doc, run,
                     sha256_file, squashfs_listing)

DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")


@pytest.fixture
def two_dirs(tmp, rootfs, spec):
    """A spec with two containers built from directories (relative paths)."""
    rootfs("rootfs-net", extra={"etc/role": "net\n"})
    rootfs("rootfs-app", extra={"etc/role": "app\n", "srv/data.bin": os.urandom(100000)})
    return spec([container("net", {"dir": "rootfs-net"}, group="platform"),
                 container("app", {"dir": "rootfs-app"})], revision=7)


def built_signed(tmp, spec_path, key, out_name="out"):
    out = tmp / out_name
    pack_ok("build", spec_path, "--out", out)
    pack_ok("sign", out, "--key", key)
    return out


def rootfs_digest(out, i):
    return revision_doc(out)["containers"][i]["rootfs"]["object"]


# ---------------------------------------------------------------- happy path

def test_build_sign_verify(tmp, keys, two_dirs):
    key, pub = keys
    out = built_signed(tmp, two_dirs, key)
    r = pack("verify", out, "--trust", pub)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "revision 7: 2 containers, 2 objects, 1/1 signatures valid"

    doc = revision_doc(out)
    assert [c["name"] for c in doc["containers"]] == ["net", "app"]
    for c in doc["containers"]:
        ref = c["rootfs"]
        assert DIGEST_RE.match(ref["object"]) and ref["format"] == "squashfs"
        assert set(ref) == {"object", "size", "format"}  # no source path left behind
        obj = object_path(out, ref["object"])
        assert sha256_file(obj) == ref["object"]
        assert obj.stat().st_size == ref["size"]


def test_dir_image_content_owned_by_root(tmp, keys, rootfs, spec):
    src = rootfs("rootfs", extra={"etc/hello": "hello\n"})
    os.chown(src / "etc" / "hello", 1000, 1000)  # a developer's file
    os.chmod(src / "etc" / "hello", 0o640)
    out = tmp / "out"
    pack_ok("build", spec([container("one", {"dir": "rootfs"})]), "--out", out)
    lines = squashfs_listing(object_path(out, rootfs_digest(out, 0)))
    hello = [l for l in lines if l.endswith("/etc/hello")]
    assert len(hello) == 1 and hello[0].split()[:2] == ["-rw-r-----", "0/0"], hello
    assert any(l.endswith("/bin/probe") for l in lines)
    assert all(" 1970-01-01 00:00 " in l for l in lines), lines[:3]  # every time is 0


def test_the_probe_in_an_image_runs(tmp, rootfs, spec):
    rootfs("rootfs")
    out = tmp / "out"
    pack_ok("build", spec([container("one", {"dir": "rootfs"})]), "--out", out)
    ex = tmp / "extracted"
    r = run(["unsquashfs", "-d", ex, object_path(out, rootfs_digest(out, 0))])
    assert r.returncode == 0, r.stderr
    r = run([ex / "bin" / "probe", "info", "--", "echo", "hi", "--", "exit", "3"])
    assert r.returncode == 3
    info = dict(l.split("=", 1) for l in r.stdout.splitlines() if l != "hi")
    assert info["pid"].isdigit() and info["uid"] == "0"
    assert int(info["mounts"]) > 0 and info["mount.0"]
    assert r.stdout.splitlines()[-1] == "hi"


def test_probe_http_over_unix_socket(tmp, build):
    path = str(tmp / "ctrl.sock")
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(path)
    srv.listen(1)
    got = {}

    def serve():
        c, _ = srv.accept()
        data = b""
        while b"\r\n\r\n" not in data:
            data += c.recv(4096)
        got["request"] = data
        c.sendall(b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n"
                  b"4\r\n{\"er\r\nd\r\nror\": \"nope\"}\r\n0\r\n\r\n")
        c.close()

    t = threading.Thread(target=serve)
    t.start()
    try:
        r = run([build / "probe", "ready"], env={"CAIRN_SOCKET": path}, timeout=10)
    finally:
        t.join(10)
        srv.close()
    assert got["request"].startswith(b"POST /v1/containers/self/ready HTTP/1.1\r\n")
    assert r.returncode == 1
    assert r.stdout.splitlines() == ["404", '{"error": "nope"}']


def test_reproducible_builds(tmp, two_dirs):
    a, b, c = tmp / "a", tmp / "b", tmp / "c"
    pack_ok("build", two_dirs, "--out", a)
    pack_ok("build", two_dirs, "--out", b)
    first = (a / "revision.json").read_bytes()
    assert (b / "revision.json").read_bytes() == first

    for root, dirs, files in os.walk(tmp):
        for n in dirs + files:
            os.utime(os.path.join(root, n), (1234567890, 1234567890), follow_symlinks=False)
    pack_ok("build", two_dirs, "--out", c)
    assert (c / "revision.json").read_bytes() == first

    # and the comparison can fail: one changed byte is a different image
    (tmp / "rootfs-app" / "etc" / "role").write_text("app2\n")
    pack_ok("build", two_dirs, "--out", c)
    assert rootfs_digest(c, 0) == rootfs_digest(a, 0)
    assert rootfs_digest(c, 1) != rootfs_digest(a, 1)


def test_tar_source_keeps_owners(tmp, keys, rootfs, spec):
    src = rootfs("rootfs-tar", extra={"home/user/notes": "mine\n"})
    os.chown(src / "home" / "user" / "notes", 1234, 2345)
    os.chmod(src / "home" / "user" / "notes", 0o600)
    with tarfile.open(tmp / "rootfs.tar", "w") as t:
        t.add(src, arcname=".")
    key, pub = keys
    out = built_signed(tmp, spec([container("tarred", {"tar": str(tmp / "rootfs.tar")})]), key)
    r = pack("verify", out, "--trust", pub)
    assert r.returncode == 0, r.stderr
    assert "1 container, 1 object," in r.stdout
    lines = squashfs_listing(object_path(out, rootfs_digest(out, 0)))
    notes = [l for l in lines if l.endswith("/home/user/notes")]
    assert len(notes) == 1 and notes[0].split()[:2] == ["-rw-------", "1234/2345"], notes

    again = tmp / "again"
    pack_ok("build", tmp / "spec.json", "--out", again)
    assert (again / "revision.json").read_bytes() == (out / "revision.json").read_bytes()


def test_file_source_for_the_kernel(tmp, keys, rootfs, spec):
    rootfs("rootfs")
    kernel = os.urandom(3000)
    (tmp / "vmlinuz").write_bytes(kernel)
    bsp = {"kernel": {"file": "vmlinuz"}, "modules": {"dir": "rootfs"},
           "cmdline": "console=ttyS0"}
    key, pub = keys
    out = built_signed(tmp, spec([container("one", {"dir": "rootfs"})], bsp=bsp), key)
    r = pack("verify", out, "--trust", pub)
    assert r.returncode == 0, r.stderr
    # rootfs and modules are the same image: one object, two uses
    assert r.stdout.strip() == "revision 1: 1 container, 2 objects, 1/1 signatures valid"
    ref = revision_doc(out)["bsp"]["kernel"]
    assert ref["format"] == "raw" and ref["size"] == len(kernel)
    assert object_path(out, ref["object"]).read_bytes() == kernel


def test_two_of_two_signatures(tmp, two_dirs):
    trust = tmp / "trust"
    trust.mkdir()
    for k in ("k1", "k2"):
        pack_ok("keygen", tmp / k)
        os.link(tmp / k / "signing.pub", trust / f"{k}.pub")
    (trust / "threshold").write_text("2\n")
    out = tmp / "out"
    pack_ok("build", two_dirs, "--out", out)
    pack_ok("sign", out, "--key", tmp / "k1" / "signing.key")
    r = pack("verify", out, "--trust", trust)
    assert r.returncode == 1 and "1 of 2 required signatures valid" in r.stderr, r.stderr
    pack_ok("sign", out, "--key", tmp / "k2" / "signing.key")
    r = pack("verify", out, "--trust", trust)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().endswith("2/2 signatures valid")


# ---------------------------------------------------------------- verify refuses

@pytest.fixture
def signed(tmp, keys, two_dirs):
    key, pub = keys
    out = built_signed(tmp, two_dirs, key)
    assert pack("verify", out, "--trust", pub).returncode == 0
    return out, pub


def verify_fails(out, pub):
    r = pack("verify", out, "--trust", pub)
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert r.stdout == ""
    assert r.stderr.startswith("cairn-pack: verify: "), r.stderr
    return r.stderr


def test_verify_tampered_object(signed):
    out, pub = signed
    digest = rootfs_digest(out, 1)
    flip_byte(object_path(out, digest))
    err = verify_fails(out, pub)
    assert digest in err and "containers[1].rootfs" in err and "digest" in err, err


def test_verify_object_wrong_size(signed):
    out, pub = signed
    digest = rootfs_digest(out, 0)
    size = revision_doc(out)["containers"][0]["rootfs"]["size"]
    with open(object_path(out, digest), "ab") as f:
        f.write(b"x")
    err = verify_fails(out, pub)
    assert f"object {digest} (containers[0].rootfs): size {size + 1} != declared {size}" in err


def test_verify_tampered_revision_json(signed):
    out, pub = signed
    doc = out / "revision.json"
    data = bytearray(doc.read_bytes())
    i = data.index(b'"revision": 7') + len(b'"revision": ')
    data[i:i + 1] = b"8"  # still valid JSON, still a valid revision
    doc.write_bytes(bytes(data))
    err = verify_fails(out, pub)
    assert "signature" in err and "bad signature" in err, err


def test_verify_missing_object(signed):
    out, pub = signed
    digest = rootfs_digest(out, 0)
    object_path(out, digest).unlink()
    err = verify_fails(out, pub)
    assert f"missing object {digest} (containers[0].rootfs)" in err, err


def test_verify_untrusted_key(signed, tmp):
    out, _ = signed
    pack_ok("keygen", tmp / "other")
    err = verify_fails(out, tmp / "other" / "signing.pub")
    assert "not trusted" in err, err


def test_verify_unsigned(tmp, keys, two_dirs):
    out = tmp / "out"
    pack_ok("build", two_dirs, "--out", out)
    err = verify_fails(out, keys[1])
    assert "revision.sig" in err and "not signed" in err, err


# ---------------------------------------------------------------- build refuses

def test_bad_spec_names_the_field(tmp, rootfs, spec):
    rootfs("rootfs")
    out = tmp / "out"
    r = pack("build", spec([container("Bad", {"dir": "rootfs"})]), "--out", out)
    assert r.returncode == 1
    assert r.stderr.startswith("cairn-pack: build: ") and "containers[0].name" in r.stderr
    assert not (out / "revision.json").exists()
    assert not out.exists()  # a spec that does not parse touches nothing


def test_failed_build_leaves_no_revision(tmp, keys, two_dirs, spec):
    out = built_signed(tmp, two_dirs, keys[0])
    doc = json.loads(two_dirs.read_text())
    doc["containers"][1]["rootfs"] = {"dir": "no-such-dir"}
    bad = spec(doc["containers"], name="bad.json", revision=8)
    r = pack("build", bad, "--out", out)
    assert r.returncode == 1
    assert "containers[1].rootfs.dir" in r.stderr and "no-such-dir" in r.stderr, r.stderr
    assert not (out / "revision.json").exists() and not (out / "revision.sig").exists()


def test_source_containing_out_is_refused(tmp, rootfs, spec):
    rootfs("rootfs")
    r = pack("build", spec([container("one", {"dir": "."})]), "--out", tmp / "out")
    assert r.returncode == 1
    assert "containers[0].rootfs.dir" in r.stderr and "its own output" in r.stderr, r.stderr
    assert not (tmp / "out" / "revision.json").exists()


def test_rebuild_drops_stale_signature(tmp, keys, two_dirs):
    out = built_signed(tmp, two_dirs, keys[0])
    pack_ok("build", two_dirs, "--out", out)
    assert (out / "revision.json").exists() and not (out / "revision.sig").exists()


def test_tool_failure_is_reported_with_its_stderr(tmp, two_dirs):
    fake = tmp / "fakebin"
    fake.mkdir()
    (fake / "mksquashfs").write_text("#!/bin/sh\necho 'fake mksquashfs: disk on fire' >&2\nexit 3\n")
    (fake / "mksquashfs").chmod(0o755)
    env = dict(os.environ, PATH=f"{fake}:{os.environ['PATH']}")
    out = tmp / "out"
    r = pack("build", two_dirs, "--out", out, env=env)
    assert r.returncode == 1
    assert "fake mksquashfs: disk on fire" in r.stderr
    assert "cairn-pack: build: containers[0].rootfs.dir: mksquashfs failed (exit 3)" in r.stderr
    assert not (out / "revision.json").exists()


def test_temp_dirs_are_removed(tmp, two_dirs, spec):
    private = tmp / "tmpdir"
    private.mkdir()
    env = dict(os.environ, TMPDIR=str(private))
    pack_ok("build", two_dirs, "--out", tmp / "ok", env=env)
    with tarfile.open(tmp / "broken.tar", "w") as t:
        t.add(tmp / "rootfs-net", arcname=".")
    (tmp / "broken.tar").write_bytes((tmp / "broken.tar").read_bytes()[:20000])
    r = pack("build", spec([container("t", {"tar": "broken.tar"})], name="t.json"), "--out",
             tmp / "bad", env=env)
    assert r.returncode == 1 and "containers[0].rootfs.tar: tar failed" in r.stderr, r.stderr
    assert list(private.iterdir()) == []


def test_mksquashfs_ignores_source_date_epoch(tmp, two_dirs):
    a, b = tmp / "a", tmp / "b"
    pack_ok("build", two_dirs, "--out", a)
    pack_ok("build", two_dirs, "--out", b, env=dict(os.environ, SOURCE_DATE_EPOCH="1700000000"))
    assert (a / "revision.json").read_bytes() == (b / "revision.json").read_bytes()


# ---------------------------------------------------------------- install

def test_install_provisions_a_storage(signed, tmp):
    out, pub = signed
    storage = tmp / "storage"  # created by install
    r = pack("install", out, "--storage", storage, "--trust", pub)
    assert r.returncode == 0, r.stderr
    assert "installed revision 7" in r.stdout
    assert (storage / "trails" / "7" / "revision.json").read_bytes() == \
        (out / "revision.json").read_bytes()
    assert json.loads((storage / "boot.json").read_text())["committed"] == 7
    for i in (0, 1):
        digest = rootfs_digest(out, i)
        assert sha256_file(object_path(storage, digest)) == digest

    r = pack("install", out, "--storage", storage, "--trust", pub)
    assert r.returncode == 1 and "already has committed revision 7" in r.stderr, r.stderr
    r = pack("install", out, "--storage", storage, "--trust", pub, "--force")
    assert r.returncode == 0, r.stderr


def test_install_refuses_a_tampered_revision(signed, tmp):
    out, pub = signed
    flip_byte(object_path(out, rootfs_digest(out, 0)))
    storage = tmp / "storage"
    storage.mkdir()
    r = pack("install", out, "--storage", storage, "--trust", pub)
    assert r.returncode == 1 and r.stderr.startswith("cairn-pack: install: "), r.stderr
    assert not (storage / "trails" / "7").exists()
    assert not (storage / "boot.json").exists() or \
        json.loads((storage / "boot.json").read_text()).get("committed", 0) == 0



def test_installed_boot_files_are_visible_without_journal_replay(tmp, keys, rootfs, spec):
    """A bootloader reads ext4 without replaying its journal (U-Boot does):
    boot files that are only in the journal do not exist for it, and a power
    cut after a commit would leave nothing to boot. Install checkpoints the
    journal, so right after it returns (no unmount, no writeback) a
    journal-less reader (debugfs -c) already sees the kernel, byte for byte."""
    rootfs("rootfs")
    kernel = os.urandom(200000)
    (tmp / "vmlinuz").write_bytes(kernel)
    bsp = {"kernel": {"file": "vmlinuz"}, "modules": {"dir": "rootfs"}, "cmdline": "quiet"}
    key, pub = keys
    out = built_signed(tmp, spec([container("one", {"dir": "rootfs"})], bsp=bsp), key)
    image, mnt = tmp / "disk.ext4", tmp / "mnt"
    run(["truncate", "-s", "64M", image])
    run(["mkfs.ext4", "-q", "-F", "-O", "has_journal", image])
    mnt.mkdir()
    # a commit interval far beyond the test: nothing reaches home on its own
    run(["mount", "-o", "loop,commit=600", image, mnt])
    try:
        r = pack("install", out, "--storage", mnt, "--trust", pub)
        assert r.returncode == 0, r.stderr
        assert (mnt / "boot" / "1" / "vmlinuz").read_bytes() == kernel
        got = tmp / "seen"
        d = run(["debugfs", "-c", "-R", f"dump /boot/1/vmlinuz {got}", image])
        assert got.exists() and got.read_bytes() == kernel, d.stderr
        d = run(["debugfs", "-c", "-R", "cat /boot/1/cmdline.env", image])
        assert d.stdout == "cairn_cmdline=quiet\n", (d.stdout, d.stderr)
    finally:
        subprocess.run(["umount", mnt], check=False)


# ---------------------------------------------------------------- usage

@pytest.mark.parametrize("args", [
    [], ["--help"], ["help"], ["frobnicate"], ["build", "spec.json"], ["build", "--out", "x"],
    ["verify", "out"], ["sign", "out"], ["keygen"], ["keygen", "a", "b"],
    ["build", "s.json", "--out", "x", "--bogus", "y"], ["build", "--help"],
    ["verify", "o", "--trust"], ["install", "o", "--trust", "k"],
    ["install", "o", "--storage", "s", "--trust", "k", "--force=yes"],
])
def test_usage_errors_exit_2(build, args):
    r = pack(*args)
    assert r.returncode == 2, (args, r.stdout, r.stderr)
    assert "usage:" in r.stderr and r.stdout == ""
