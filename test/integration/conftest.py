"""Fixtures for the integration tests (run as root by `make test-integration`,
with CAIRN_BUILD = the absolute build directory)."""
import glob
import os
import shutil
import tempfile
from pathlib import Path

import pytest

import helpers


@pytest.fixture(scope="session")
def build():
    """The build directory, with the binaries the tests drive."""
    b = helpers.build_dir()
    for name in ("cairn-pack", "probe"):
        if not (b / name).exists():
            pytest.fail(f"{b / name} missing: run `make` first (or `make test-integration`)")
    return b


@pytest.fixture
def tmp():
    """A private temp dir, removed after the test whatever its outcome."""
    d = Path(tempfile.mkdtemp(prefix="cairn-it-"))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)
        assert not d.exists(), f"could not remove {d}"


@pytest.fixture
def keys(build, tmp):
    """A fresh signing key pair: (tmp/keys/signing.key, tmp/keys/signing.pub)."""
    d = tmp / "keys"
    helpers.pack_ok("keygen", d)
    return d / "signing.key", d / "signing.pub"


@pytest.fixture
def rootfs(build, tmp):
    """make_rootfs(name, **kw) -> tmp/<name>, a busybox + probe rootfs dir."""
    def make(name, **kw):
        return helpers.make_rootfs(tmp / name, **kw)
    return make


@pytest.fixture
def spec(tmp):
    """write_spec(containers, name="spec.json", **kw) -> tmp/<name>."""
    def write(containers, name="spec.json", **kw):
        return helpers.write_spec(tmp / name, containers, **kw)
    return write


@pytest.fixture(autouse=True)
def _root_only():
    if os.geteuid() != 0:
        pytest.skip("integration tests run as root (make test-integration)")


def _own_cgroup_dirs():
    """Where this process sits in every mounted hierarchy: liblxc makes its
    cgroups beside its caller, which is not the root when the test runner
    itself runs in a cgroup (a job's memory cgroup, say)."""
    dirs = {"/sys/fs/cgroup"}
    try:
        with open("/proc/self/cgroup") as f:
            lines = f.read().splitlines()
    except OSError:
        return dirs
    for line in lines:
        _, ctrls, path = line.split(":", 2)
        name = "unified" if ctrls == "" else ctrls.replace("name=", "")
        for base in ("/sys/fs/cgroup/" + name, "/sys/fs/cgroup"):
            d = os.path.normpath(base + path)
            if os.path.isdir(d):
                dirs.add(d)
        dirs.add("/sys/fs/cgroup/" + name)
    return dirs


def _remove_empty_lxc_cgroups():
    """liblxc leaves empty lxc.monitor.NAME / lxc.payload.NAME / lxc.pivot
    cgroups behind when a keeper is killed (the crash tests kill many), and
    then picks NAME-1, NAME-2 ... for every start, each one more name to
    skip. Tests clean up what they create: remove every empty lxc cgroup,
    at the top of each hierarchy and beside this process (a busy one
    refuses)."""
    tops = set()
    for d in _own_cgroup_dirs():
        tops.update(glob.glob(os.path.join(d, "lxc.*")))
        tops.update(glob.glob(os.path.join(d, "*", "lxc.*")))
    for top in tops:
        for root, _dirs, _files in os.walk(top, topdown=False):
            try:
                os.rmdir(root)
            except OSError:
                pass


@pytest.fixture(autouse=True)
def _lxc_cgroups_cleaned():
    yield
    _remove_empty_lxc_cgroups()
