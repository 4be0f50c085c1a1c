"""The fleet hub (issue 7): `cairn-pack publish` / `fleet`, nginx as the
reference hub (tools/hub/serve), the misbehaving proxy of hubproxy.py, and
sandbox devices that follow what the hub assigns them (trails/HUB.md).

Every test that needs nginx starts its own on a free loopback port and stops
it whatever happens; without nginx they are skipped with the reason."""
import hashlib
import json
import math
import os
import shutil
import subprocess
import tempfile
import time

import pytest

import helpers
from device import BUILD, Device, api, our_loops, our_mounts
from hubproxy import Hub, Proxy, nginx_path

CURL = shutil.which("curl")


def need_nginx():
    if not nginx_path():
        pytest.skip("nginx is not installed: the reference hub tests need it "
                    "(apt-get install nginx-light)")


@pytest.fixture
def hub(tmp):
    need_nginx()
    h = Hub(tmp)
    try:
        yield h.start()
    finally:
        h.stop()


def sha256_bytes(data):
    return hashlib.sha256(data).hexdigest()


def build_rev(tmp, keys, revision, tags, name=None, sign=True):
    """A signed revision whose containers (one per tag) each have their own rootfs."""
    containers = []
    for tag in tags:
        rootfs = tmp / ("rootfs-" + tag)
        if not rootfs.exists():
            helpers.make_rootfs(rootfs, extra={"etc/tag": tag + "\n"})
        containers.append(helpers.container(tag, {"dir": str(rootfs)}))
    spec = helpers.write_spec(tmp / ("spec%d.json" % revision), containers, revision=revision)
    out = tmp / (name or "out%d" % revision)
    helpers.pack_ok("build", spec, "--out", out)
    if sign:
        helpers.pack_ok("sign", out, "--key", keys[0])
    return out


def objects_of(out):
    doc = helpers.revision_doc(out)
    return [c["rootfs"]["object"] for c in doc["containers"]]


def hub_files(hubdir):
    """Every file under the hub dir (relative path -> (size, mtime_ns, inode))."""
    found = {}
    for dirpath, _, files in os.walk(hubdir):
        for f in files:
            p = os.path.join(dirpath, f)
            st = os.lstat(p)
            found[os.path.relpath(p, hubdir)] = (st.st_size, st.st_mtime_ns, st.st_ino)
    return found


def publish(hubdir, out, *args):
    return helpers.pack("publish", out, "--hub", hubdir, *args)


def curl(*args):
    assert CURL, "curl is not installed"
    args = [a if isinstance(a, bytes) else str(a) for a in args]
    return subprocess.run([CURL, "-sS", *args], capture_output=True, timeout=60)


def curl_head(url, *args):
    """(status, headers dict with lowercase names, body bytes) of a GET."""
    r = curl("-D", "-", url, *args)
    raw = r.stdout
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, headers, body


# ---------------- publish ----------------

def test_publish_places_verified_objects_then_the_desired_pointer(tmp, keys):
    out = build_rev(tmp, keys, 1, ["a", "b"])
    hubdir = tmp / "hub"
    r = publish(hubdir, out, "--device", "dev-1", "--trust", keys[1])
    assert r.returncode == 0, r.stderr
    assert "published revision 1 to device dev-1: 2 objects (2 new" in r.stdout, r.stdout
    for digest in objects_of(out):
        placed = hubdir / "v1/objects/sha256" / digest[7:]
        assert helpers.sha256_file(placed) == digest
        # same filesystem: a hard link to OUT's verified object, not a copy
        assert placed.stat().st_ino == helpers.object_path(out, digest).stat().st_ino
    desired = hubdir / "v1/devices/dev-1/desired"
    pointer = json.loads(desired.read_text())
    assert sorted(pointer) == ["document", "revision", "signature"]
    assert pointer["revision"] == 1
    assert pointer["document"] == (out / "revision.json").read_text()
    assert pointer["signature"] == (out / "revision.sig").read_text()
    assert not [f for f in hub_files(hubdir) if ".tmp." in f]

    # the same assignment again: nothing moves, the ETag (mtime, size) stays
    before = hub_files(hubdir)
    r = publish(hubdir, out, "--device", "dev-1")
    assert r.returncode == 0 and "(0 new, 0 bytes; 2 already on the hub)" in r.stdout, r.stdout
    assert hub_files(hubdir) == before

    # temp files of a publish that died are swept; a live one's are not
    dead = subprocess.Popen(["true"])
    dead.wait()
    objdir = hubdir / "v1/objects/sha256"
    (objdir / (".tmp.%s.%d" % ("0" * 64, dead.pid))).write_bytes(b"half")
    (objdir / (".tmp.%s.%d" % ("1" * 64, os.getpid()))).write_bytes(b"busy")
    (hubdir / ("v1/devices/dev-1/.tmp.desired.%d" % dead.pid)).write_bytes(b"half")

    # a new revision in the same second: its pointer gets a later mtime (a new ETag)
    out2 = build_rev(tmp, keys, 2, ["a", "c"])
    old_mtime = int(desired.stat().st_mtime)
    r = publish(hubdir, out2, "--device", "dev-1")
    assert r.returncode == 0 and "2 objects (1 new" in r.stdout, r.stdout
    assert int(desired.stat().st_mtime) >= old_mtime + 1  # nginx's ETag has whole seconds
    assert json.loads(desired.read_text())["revision"] == 2
    temps = sorted(f for f in hub_files(hubdir) if ".tmp." in f)
    assert temps == ["v1/objects/sha256/.tmp.%s.%d" % ("1" * 64, os.getpid())], temps


def test_publish_to_a_group_writes_every_members_pointer(tmp, keys):
    out = build_rev(tmp, keys, 3, ["a"])
    hubdir = tmp / "hub"
    (hubdir / "groups/lab").mkdir(parents=True)
    (hubdir / "groups/lab/members").write_text("# the lab benches\nbench-1\n\n  Bench.2 \t\n")
    r = publish(hubdir, out, "--group", "lab")
    assert r.returncode == 0, r.stderr
    assert "to group lab" in r.stdout and "2 members (2 updated)" in r.stdout, r.stdout
    group = (hubdir / "groups/lab/desired").read_bytes()
    assert json.loads(group)["revision"] == 3
    for dev in ("bench-1", "Bench.2"):
        assert (hubdir / "v1/devices" / dev / "desired").read_bytes() == group
    # a member added later gets it on the next publish; the others keep their ETag
    (hubdir / "groups/lab/members").write_text("bench-1\nBench.2\nbench-3\n")
    mtime = (hubdir / "v1/devices/bench-1/desired").stat().st_mtime_ns
    r = publish(hubdir, out, "--group", "lab")
    assert r.returncode == 0 and "3 members (1 updated)" in r.stdout, r.stdout
    assert (hubdir / "v1/devices/bench-3/desired").read_bytes() == group
    assert (hubdir / "v1/devices/bench-1/desired").stat().st_mtime_ns == mtime

    # one bad line refuses the whole publish before the hub changes
    out2 = build_rev(tmp, keys, 4, ["a", "b"])
    (hubdir / "groups/lab/members").write_text("bench-1\n../etc\n")
    before = hub_files(hubdir)
    r = publish(hubdir, out2, "--group", "lab")
    assert r.returncode == 1
    assert "groups/lab/members: line 2: '../etc' is not a device id" in r.stderr, r.stderr
    assert hub_files(hubdir) == before


@pytest.mark.parametrize("args, why", [
    (["--device", "../x"], "is not a device id"),
    (["--device", ".hidden"], "is not a device id"),
    (["--device", "d" * 65], "is not a device id"),
    (["--device", "a/b"], "is not a device id"),
    (["--group", "Lab"], "is not a group name"),
    (["--group", "lab", "--device", "d1"], "exactly one of --device ID or --group NAME"),
    ([], "exactly one of --device ID or --group NAME"),
])
def test_publish_refuses_bad_targets(tmp, keys, args, why):
    out = build_rev(tmp, keys, 1, ["a"])
    r = publish(tmp / "hub", out, *args)
    assert r.returncode == 1 and why in r.stderr, (r.returncode, r.stderr)
    assert not hub_files(tmp / "hub")


def test_publish_refuses_what_a_device_would_refuse(tmp, keys):
    out = build_rev(tmp, keys, 1, ["a", "b"])
    hubdir = tmp / "hub"
    # signed by another key than the trusted one
    other = tmp / "other"
    helpers.pack_ok("keygen", other)
    r = publish(hubdir, out, "--device", "d1", "--trust", other / "signing.pub")
    assert r.returncode == 1 and "revision.sig" in r.stderr, r.stderr
    # unsigned
    unsigned = build_rev(tmp, keys, 1, ["a"], name="unsigned", sign=False)
    r = publish(hubdir, unsigned, "--device", "d1")
    assert r.returncode == 1 and "not signed" in r.stderr, r.stderr
    # an object whose bytes changed after the build: found while copying, named by field
    b_obj = objects_of(out)[1]
    helpers.flip_byte(helpers.object_path(out, b_obj))
    r = publish(hubdir, out, "--device", "d1")
    assert r.returncode == 1, r.stdout
    assert "containers[1].rootfs" in r.stderr and "digest mismatch" in r.stderr, r.stderr
    files = hub_files(hubdir)
    assert "v1/objects/sha256/" + b_obj[7:] not in files
    assert not [f for f in files if ".tmp." in f or f.endswith("desired")], files


def test_publish_copies_across_filesystems(tmp, keys):
    shm = "/dev/shm"
    if not os.path.isdir(shm) or os.stat(shm).st_dev == os.stat(tmp).st_dev:
        pytest.skip("needs /dev/shm on another filesystem than %s" % tmp)
    elsewhere = tempfile.mkdtemp(prefix="cairn-hub-", dir=shm)
    try:
        out = build_rev(tmp, keys, 1, ["a"], name="out-shm")
        moved = shutil.copytree(out, os.path.join(elsewhere, "out"))
        r = publish(tmp / "hub", moved, "--device", "d1")
        assert r.returncode == 0, r.stderr
        digest = objects_of(moved)[0]
        placed = tmp / "hub/v1/objects/sha256" / digest[7:]
        assert placed.stat().st_nlink == 1 and oct(placed.stat().st_mode & 0o777) == "0o444"
        assert helpers.sha256_file(placed) == digest
    finally:
        shutil.rmtree(elsewhere, ignore_errors=True)


# ---------------- nginx as the hub ----------------

def test_nginx_serves_pointers_with_etags_objects_with_ranges_and_takes_reports(tmp, keys, hub):
    out = build_rev(tmp, keys, 1, ["a"])
    hub.publish(out, device="d1")
    url = hub.url + "/v1/devices/d1/desired"
    status, h, body = curl_head(url)
    assert status == 200 and h["content-type"] == "application/json", (status, h)
    assert json.loads(body)["revision"] == 1
    etag = h["etag"]
    status, _, body = curl_head(url, "-H", "If-None-Match: " + etag)
    assert status == 304 and body == b""
    # a new assignment: a new ETag, the old one no longer matches
    hub.publish(build_rev(tmp, keys, 2, ["a", "b"]), device="d1")
    status, h, body = curl_head(url, "-H", "If-None-Match: " + etag)
    assert status == 200 and h["etag"] != etag and json.loads(body)["revision"] == 2

    digest = objects_of(out)[0]
    data = helpers.object_path(out, digest).read_bytes()
    obj = hub.url + "/v1/objects/sha256/" + digest[7:]
    status, h, body = curl_head(obj, "-H", "Range: bytes=100-")
    assert status == 206 and body == data[100:], status
    assert h["content-range"] == "bytes 100-%d/%d" % (len(data) - 1, len(data))
    status, _, body = curl_head(obj)
    assert status == 200 and sha256_bytes(body) == digest[7:]

    report = json.dumps({"device": "d1", "state": "DONE", "revision": 2}).encode()
    r = curl("-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT", "--data-binary", report,
             "-H", "Content-Type: application/json", hub.url + "/v1/devices/d1/status")
    assert r.stdout in (b"201", b"204"), r.stdout
    assert hub.status("d1") == json.loads(report)
    # a second report replaces the first
    r = curl("-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT", "--data-binary", b"{}",
             hub.url + "/v1/devices/d1/status")
    assert r.stdout == b"204" and hub.status("d1") == {}

    def code(path, *args):
        return curl("-o", "/dev/null", "-w", "%{http_code}", *args, hub.url + path).stdout
    assert code("/v1/devices/d1/desired", "-X", "PUT", "--data", "{}") == b"403"
    assert code("/v1/objects/sha256/" + digest[7:], "-X", "PUT", "--data", "x") == b"403"
    assert code("/v1/devices/d1/status", "-X", "DELETE") == b"403"
    assert code("/v1/devices/nobody/desired") == b"404"
    assert code("/v1/devices/../groups/x/desired", "--path-as-is") in (b"400", b"404")
    assert code("/v1/objects/sha256/") == b"404"
    assert code("/hub-run/nginx.conf") == b"404"
    assert code("/v1/devices/d1/status", "-X", "PUT", "--data-binary",
                "@" + str(helpers.object_path(out, digest))) == b"413"
    assert json.loads((tmp / "hub/v1/devices/d1/desired").read_text())["revision"] == 2
    methods = [(q["method"], q["status"]) for q in hub.requests()]
    assert ("GET", 304) in methods and ("GET", 206) in methods, methods


def openssl(*args):
    r = subprocess.run(["openssl", *map(str, args)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


def make_ca(d, name):
    """A CA, and a certificate it signed for 127.0.0.1: (ca.pem, cert.pem, key.pem)."""
    d.mkdir(parents=True, exist_ok=True)
    ca_key, ca, key, csr, cert = (d / (name + x) for x in
                                  ("-ca.key", "-ca.pem", ".key", ".csr", ".pem"))
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", ca_key, "-out", ca, "-days", "2", "-subj", "/CN=%s test CA" % name)
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1")
    ext = d / (name + ".ext")
    ext.write_text("subjectAltName = IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
            "-out", cert, "-days", "2", "-extfile", ext)
    return ca, cert, key


def test_serve_can_require_tls_client_certificates_and_a_token(tmp, keys):
    need_nginx()
    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed: no test certificates")
    server_ca, cert, key = make_ca(tmp / "pki", "server")
    client_ca, ccert, ckey = make_ca(tmp / "pki", "client")
    token = tmp / "token"
    token.write_text("s3cr3t-t0ken-for-the-hub\n")
    hub = Hub(tmp, serve_args=["--tls", cert, key, "--client-ca", client_ca,
                               "--token-file", token])
    hub.publish(build_rev(tmp, keys, 1, ["a"]), device="d1")
    try:
        hub.start()
        url = hub.url + "/v1/devices/d1/desired"
        assert url.startswith("https://")
        auth = ["-H", "Authorization: Bearer s3cr3t-t0ken-for-the-hub"]
        ok = ["--cacert", server_ca, "--cert", ccert, "--key", ckey]
        status, _, body = curl_head(url, *ok, *auth)
        assert status == 200 and json.loads(body)["revision"] == 1
        status, _, _ = curl_head(url, *ok, "-H", "Authorization: Bearer wrong-token-0000000")
        assert status == 401
        status, _, _ = curl_head(url, *ok)
        assert status == 401
        # no client certificate: refused by TLS (nginx answers 400)
        status, _, _ = curl_head(url, "--cacert", server_ca, *auth)
        assert status == 400
        # a server the client does not trust: curl refuses it
        r = curl("--cacert", client_ca, "--cert", ccert, "--key", ckey, *auth, url)
        assert r.returncode == 60, r.stderr
    finally:
        hub.stop()
    # a token serve cannot put into nginx.conf safely is refused
    token.write_text('x" ; return 200; #\n')
    r = subprocess.run([os.path.join(os.path.dirname(__file__), "../../tools/hub/serve"),
                        "--run", tmp / "run2", "--token-file", token, tmp / "hub", "1"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "--token-file" in r.stderr, r.stderr


def test_proxy_cuts_at_random_offsets_and_curl_resumes(tmp, hub):
    size = 50 << 20
    data = os.urandom(size)
    digest = sha256_bytes(data)
    objdir = tmp / "hub/v1/objects/sha256"
    objdir.mkdir(parents=True)
    (objdir / digest).write_bytes(data)
    del data
    with Proxy(hub.port) as proxy:
        cuts = proxy.cut_random(12, 1 << 20, size - (1 << 20), seed=7)
        part = tmp / "part"
        for attempt in range(40):
            # a client slower than the link (a device writing to flash): the
            # proxy's send queue fills, and each reset throws megabytes away
            r = curl("-C", "-", "--limit-rate", "100M", "-o", part,
                     proxy.url + "/v1/objects/sha256/" + digest)
            if r.returncode == 0:
                break
            assert r.returncode in (18, 56), r.stderr  # partial file, connection reset
        else:
            raise AssertionError("still incomplete after 40 resumes")
        assert helpers.sha256_file(part) == "sha256:" + digest
        assert proxy.cuts == len(cuts) and proxy.cuts_pending() == 0
        assert attempt == len(cuts), attempt
        # what reached curl: forwarded, less what a reset threw away unsent
        got = proxy.down - proxy.discarded
        print("forwarded %d, discarded by resets %d, received %d" % (proxy.down, proxy.discarded, got))
        assert size < proxy.down and got <= 1.1 * size, (proxy.down, proxy.discarded)
    ranges = [q["range"] for q in hub.requests() if q["path"].endswith(digest)]
    assert len(ranges) == len(cuts) + 1 and ranges[0] == "-", ranges


def test_proxy_answers_chosen_requests_with_garbage_or_an_endless_body(tmp, keys, hub):
    hub.publish(build_rev(tmp, keys, 1, ["a"]), device="d1")
    with Proxy(hub.port) as proxy:
        proxy.inject(r"/desired$", "garbage")
        r = curl("--http0.9", "-o", tmp / "g", proxy.url + "/v1/devices/d1/desired")
        got = (tmp / "g").read_bytes()
        assert len(got) == 4096 and b"revision" not in got
        proxy.clear()
        proxy.inject(r"/desired$", "endless")
        t0 = time.monotonic()
        r = curl("--max-time", "2", "-o", tmp / "e", proxy.url + "/v1/devices/d1/desired")
        assert r.returncode == 28 and time.monotonic() - t0 < 10  # curl gave up, not the proxy
        assert (tmp / "e").stat().st_size > (1 << 20) and proxy.injected > (1 << 20)
        proxy.clear()
        r = curl(proxy.url + "/v1/devices/d1/desired")
        assert r.returncode == 0 and json.loads(r.stdout)["revision"] == 1
        assert proxy.up > 0 and proxy.down > len(r.stdout)


# ---------------- fleet ----------------

def test_fleet_lists_assignments_and_reports(tmp, keys):
    hubdir = tmp / "hub"
    out = build_rev(tmp, keys, 5, ["a"])
    for dev in ("d1", "d2", "d3", "d4"):
        assert publish(hubdir, out, "--device", dev).returncode == 0
    devs = hubdir / "v1/devices"
    base = {"time": 1795299238, "running": 4, "committed": 4, "try": 0, "keys": 0,
            "revision": 5, "done": 0, "total": 0, "rate": 0, "reason": "", "message": "",
            "field": ""}
    (devs / "d1/status").write_text(json.dumps(dict(base, device="d1", running=5, committed=5,
                                                    keys=2, state="DONE")))
    (devs / "d2/status").write_text(json.dumps(dict(base, device="d2", state="DOWNLOADING",
                                                    done=1 << 20, total=4 << 20, rate=1000)))
    (devs / "d3/status").write_text(json.dumps(dict(
        base, device="d3", state="FAILED", reason="goal-timeout\x1b[2J\u00e9",
        message="container a: goal READY not reached within 3 s")))
    (devs / "d5").mkdir()
    (devs / "d5/status").write_text("{not json")
    (devs / ".." "x").mkdir()  # not a device id: not listed
    old = time.time() - 3 * 3600
    os.utime(devs / "d1/status", (old, old))

    r = helpers.pack("fleet", hubdir)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["DEVICE", "DESIRED", "RUNNING", "COMMITTED", "KEYS", "UPDATE",
                                "STATE", "AGE", "REASON"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert sorted(rows) == ["d1", "d2", "d3", "d4", "d5"]
    assert rows["d1"] == ["d1", "5", "5", "5", "2", "5", "DONE", "3h", "-"]
    assert rows["d2"][:8] == ["d2", "5", "4", "4", "0", "5", "DOWNLOADING", "25%"]
    assert rows["d3"][6] == "FAILED" and rows["d3"][8] == "goal-timeout?[2J??", rows["d3"]
    assert "\x1b" not in r.stdout
    assert rows["d4"] == ["d4", "5", "-", "-", "-", "-", "-", "never", "-"]
    assert rows["d5"][1] == "-" and "bad report" in " ".join(rows["d5"])

    r = helpers.pack("fleet", hubdir, "--json")
    assert r.returncode == 0, r.stderr
    got = {d["device"]: d for d in json.loads(r.stdout)}
    assert got["d2"]["done"] == 1 << 20 and got["d2"]["total"] == 4 << 20
    assert got["d1"]["keys"] == 2 and got["d4"]["keys"] is None
    assert got["d3"]["reason"] == "goal-timeout\x1b[2J\u00e9"
    assert got["d3"]["message"].startswith("container a")
    assert got["d1"]["age_s"] >= 3 * 3600 - 5 and got["d4"]["reported"] is None
    assert got["d5"]["error"].startswith("bad report")
    assert helpers.pack("fleet", tmp / "nowhere").returncode == 1


# ---------------- devices following the hub ----------------
#
# A sandbox device (device.py) booted with `--config` naming the hub, usually
# through the proxy so the bytes on the wire are counted. Reports are read
# where nginx stored them (HUB/v1/devices/<id>/status).

DEV_ID = "dev-1"
READY = ["/bin/probe", "ready", "--", "sleep", "9999999"]
NEVER = ["/bin/probe", "echo", "c-never-ready", "--", "sleep", "9999999"]
GROUPS = [{"name": "platform", "timeout_s": 20}, {"name": "app", "timeout_s": 20}]
# for a revision whose app is meant to miss its goal: fails in 5 s, not 20
GROUPS_FAIL = [{"name": "platform", "timeout_s": 20}, {"name": "app", "timeout_s": 5}]
LONG = bool(os.environ.get("CAIRN_LONG"))
POINTER_MAX = 2 * ((1 << 20) + (64 << 10)) + 4096  # the largest pointer a device reads (HUB.md)


def ctr(name, group="app", exec_=READY, **kw):
    c = {"name": name, "group": group, "exec": exec_, "status_goal": "READY"}
    c.update(kw)
    return c


class HubDevice(Device):
    def boot_hub(self, url, poll_s=5, device_id=DEV_ID, extra=""):
        """Boot like Device.boot, with a configuration file naming the hub."""
        self.config = os.path.join(self.root, "cairn.conf")
        with open(self.config, "w") as f:
            f.write("# written by test_hub.py\nhub.url = %s\nhub.device_id = %s\n"
                    "hub.poll_s = %d\n%s" % (url, device_id, poll_s, extra))
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [os.path.join(BUILD, "cairn"), "--sandbox", "--storage", self.storage,
             "--trust", self.trust, "--admin-socket", self.sock, "--log-level", "debug",
             "--config", self.config],
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        self.wait(lambda: os.path.exists(self.sock) and self.try_api("GET", "/v1/status"),
                  10, "admin socket answering")
        return self

    def variant(self, tag, blob=0):
        """A rootfs of its own (its own object); `blob` random bytes in /blob."""
        p = self.rootfs("rootfs-" + tag)
        with open(os.path.join(p, "etc/variant"), "w") as f:
            f.write(tag + "\n")
        if blob:
            with open(os.path.join(p, "blob"), "wb") as f:
                f.write(os.urandom(blob))
        return {"dir": p}

    def poll_now(self):
        st, body = self.api("POST", "/v1/commands/poll-hub")
        assert st == 202, (st, body)

    def running(self):
        got = self.try_api("GET", "/v1/status")
        return got[1].get("revision") if got and got[0] == 200 else None

    def revision(self, rev):
        got = self.try_api("GET", "/v1/revisions/%d" % rev)
        return got[1] if got and got[0] == 200 else None

    def objects(self):
        """{digest hex: size} of the object store."""
        out = {}
        base = os.path.join(self.storage, "objects/sha256")
        for sub in os.listdir(base):
            for name in os.listdir(os.path.join(base, sub)):
                out[sub + name] = os.path.getsize(os.path.join(base, sub, name))
        return out

    def installed(self):
        return sorted(os.listdir(os.path.join(self.storage, "trails")))

    def staged(self):
        """{name: size} of the files in the download staging area."""
        out = {}
        for dirpath, _, files in os.walk(os.path.join(self.storage, "tmp")):
            for f in files:
                p = os.path.join(dirpath, f)
                out[os.path.relpath(p, self.storage)] = os.path.getsize(p)
        return out


class Fleet:
    """One hub (nginx) and one device; a proxy on demand."""

    def __init__(self, root):
        self.root = str(root)
        self.hub = Hub(root)
        self.dev = HubDevice(os.path.join(self.root, "dev"))
        self.proxies = []

    def proxy(self):
        p = Proxy(self.hub.port)
        self.proxies.append(p)
        return p

    def report(self, pred, timeout, what):
        """Wait for a stored report that satisfies pred; return it."""
        seen = []

        def check():
            st = self.hub.status(DEV_ID)
            if st is not None and (not seen or seen[-1] != st):
                seen.append(st)
            return st if st is not None and pred(st) else None
        try:
            return self.dev.wait(check, timeout, "a report with " + what)
        except AssertionError as e:
            raise AssertionError("%s\nreports seen: %s\n%s" % (e, seen[-5:], self.hub.logs()))

    def close(self):
        try:
            try:
                self.dev.stop()
            finally:
                self.dev.kill()
                for p in self.proxies:
                    p.close()
                self.hub.stop()
        finally:
            end = time.monotonic() + 10
            while (our_mounts(self.root) or our_loops(self.root)) and time.monotonic() < end:
                time.sleep(0.1)
            left = our_mounts(self.root), our_loops(self.root)
            assert not left[0] and not left[1], left


@pytest.fixture
def fleet(tmp, build):
    need_nginx()
    if not os.path.exists(os.path.join(BUILD, "cairn")):
        pytest.fail("build/cairn missing: run `make` first")
    f = Fleet(tmp)
    try:
        f.hub.start()
        yield f
    finally:
        f.close()


def state_is(state, rev, reason=None):
    return lambda s: (s.get("revision") == rev and s.get("state") == state and
                      (reason is None or s.get("reason") == reason))


def replace_file(path, data):
    """New bytes under the same name without touching the old inode (hub
    objects are hard links to OUT's), one second newer (a new ETag)."""
    path = str(path)
    old = os.stat(path).st_mtime
    with open(path + ".new", "wb") as f:
        f.write(data)
    os.utime(path + ".new", (old + 1, old + 1))
    os.replace(path + ".new", path)


def test_device_follows_the_hub_reports_done_then_a_rollback_as_failed(fleet):
    d, hub = fleet.dev, fleet.hub
    d.install(d.build([ctr("a", "platform"), ctr("b")], revision=1, groups=GROUPS))
    proxy = fleet.proxy()
    d.boot_hub(proxy.url)
    for n in ("a", "b"):
        d.wait_state(n, "READY")
    pids = {n: c["pid"] for n, c in d.containers().items()}
    # nothing assigned yet (404): the first poll is reported all the same
    first = fleet.report(lambda s: True, 30, "anything")
    assert first["device"] == DEV_ID and first["running"] == 1 and first["committed"] == 1
    assert first["revision"] == 0 and first["state"] == "NONE", first

    out2 = d.build([ctr("a", "platform"), ctr("b", rootfs=d.variant("b2"))], revision=2,
                   groups=GROUPS)
    hub.publish(out2, device=DEV_ID)
    d.poll_now()
    st = fleet.report(state_is("DONE", 2), 60, "revision 2 DONE")
    assert st["running"] == 2 and st["committed"] == 2 and st["reason"] == "", st
    b2 = helpers.revision_doc(out2)["containers"][1]["rootfs"]
    assert st["done"] == st["total"] == b2["size"], st
    # only the object the device lacked went over the wire, once
    fetched = [t for _, m, t in proxy.requests("/v1/objects/")]
    assert fetched == ["/v1/objects/sha256/" + b2["object"][7:]], fetched
    r = d.revision(2)
    assert r["state"] == "DONE" and r["running"] and r["previous"] == 1, r
    cs = d.containers()
    assert cs["a"]["pid"] == pids["a"] and cs["b"]["pid"] != pids["b"], (pids, cs)
    table = helpers.pack("fleet", hub.dir).stdout
    assert DEV_ID in table and "DONE" in table, table

    # a revision whose app never gets ready: tried, rolled back, reported FAILED
    out3 = d.build([ctr("a", "platform"), ctr("b", exec_=NEVER, rootfs=d.variant("never"))],
                   revision=3, groups=GROUPS_FAIL)
    hub.publish(out3, device=DEV_ID)
    d.poll_now()
    st = fleet.report(state_is("FAILED", 3), 60, "revision 3 FAILED")
    assert st["reason"] == "goal-timeout" and "b" in st["message"], st
    d.wait(lambda: d.running() == 2 and d.containers()["b"]["state"] == "READY", 20,
           "revision 2 running again")
    assert d.revision(3)["failure"]["reason"] == "goal-timeout"
    fl = {x["device"]: x for x in json.loads(helpers.pack("fleet", hub.dir, "--json").stdout)}
    assert fl[DEV_ID]["state"] == "FAILED" and fl[DEV_ID]["reason"] == "goal-timeout"
    assert fl[DEV_ID]["desired"] == 3 and fl[DEV_ID]["running"] == 2
    # polled again: the failed number is not tried a second time
    d.poll_now()
    time.sleep(3)
    assert d.revision(3)["state"] == "FAILED" and d.running() == 2


def test_a_download_cut_at_random_offsets_resumes_within_ten_percent(fleet):
    d, hub = fleet.dev, fleet.hub
    d.install(d.build([ctr("a")], revision=1, groups=GROUPS))
    out2 = d.build([ctr("a"), ctr("big", rootfs=d.variant("big", blob=50 << 20))], revision=2,
                   groups=GROUPS)
    big = helpers.revision_doc(out2)["containers"][1]["rootfs"]
    assert big["size"] >= 50 << 20
    proxy = fleet.proxy()
    d.boot_hub(proxy.url)
    d.wait_state("a", "READY")
    fleet.report(lambda s: True, 30, "the first report")
    proxy.reset_counters()
    # A link slower than the device's disk, as real links are: on loopback an
    # unthrottled sender fills the device's socket buffer (megabytes), and a
    # reset throws away what the device had not read yet.
    proxy.rate = 32 << 20
    cuts = proxy.cut_random(12, 64 << 10, big["size"] - (64 << 10), seed=11,
                            match=r"^/v1/objects/")
    hub.publish(out2, device=DEV_ID)
    d.poll_now()
    st = fleet.report(state_is("DONE", 2), 240, "revision 2 DONE")
    assert proxy.cuts == len(cuts) >= 10, (proxy.cuts, cuts)
    obj_path = "/v1/objects/sha256/" + big["object"][7:]
    gets = [q for q in hub.requests() if q["path"] == obj_path]
    assert len(gets) == proxy.cuts + 1, gets
    starts = [int(q["range"][6:-1]) if q["range"].startswith("bytes=") else 0 for q in gets]
    # every fetch after a cut resumed where the last one stopped: none started over
    assert starts[0] == 0 and starts == sorted(starts), starts
    lost = [sent - (b - a) for (_, sent, _), a, b in zip(proxy.cut_log, starts, starts[1:])]
    ratio = (proxy.down - proxy.discarded) / big["size"]
    print("50 MiB object, %d cuts (alternately RST and FIN), %d requests: %d bytes forwarded,"
          " %d of them thrown away unsent by resets: %.4f x the object received;"
          " bytes lost per cut %s"
          % (proxy.cuts, len(gets), proxy.down, proxy.discarded, ratio, lost))
    assert ratio <= 1.1, ratio
    assert d.objects()[big["object"][7:]] == big["size"]
    assert not [f for f in d.staged() if f.endswith(".part")], d.staged()
    assert st["running"] == 2 and d.containers()["big"]["state"] == "READY"


def signed_by(out, key):
    """Re-sign OUT by key alone (the device's root signed it first)."""
    os.unlink(os.path.join(out, "revision.sig"))
    helpers.pack_ok("sign", out, "--key", key)
    return out


def test_a_revision_signed_by_a_new_key_arrives_with_its_keys_document(fleet):
    d, hub = fleet.dev, fleet.hub
    root = os.path.join(d.keys, "signing.key")
    d.install(d.build([ctr("a")], revision=1, groups=GROUPS))
    d.boot_hub(hub.url)
    d.wait_state("a", "READY")
    s1, s2 = (os.path.join(d.root, n) for n in ("s1", "s2"))
    for k in (s1, s2):
        helpers.pack_ok("keygen", k)
    # the build server's key S1, named by a keys document the root signed
    k1 = helpers.keys_doc(os.path.join(d.root, "k1"), 1, [os.path.join(s1, "signing.pub")],
                          [root])
    out2 = signed_by(d.build([ctr("a", rootfs=d.variant("k2"))], revision=2, groups=GROUPS),
                     os.path.join(s1, "signing.key"))
    hub.publish(out2, device=DEV_ID, keys=k1)
    d.poll_now()
    st = fleet.report(state_is("DONE", 2), 60, "revision 2 (signed by S1) DONE")
    assert st["running"] == 2 and st["keys"] == 1, st  # the fleet sees who has serial 1
    _, keys = d.api("GET", "/v1/keys")
    assert keys["serial"] == 1 and len(keys["keys"]) == 1, keys
    # a keys document signed by S1 (not a root) naming S2: refused, and the
    # revision S2 signed is refused with it; the device keeps serial 1
    k2 = helpers.keys_doc(os.path.join(d.root, "k2"), 2, [os.path.join(s2, "signing.pub")],
                          [os.path.join(s1, "signing.key")])
    out3 = signed_by(d.build([ctr("a", rootfs=d.variant("k3"))], revision=3, groups=GROUPS),
                     os.path.join(s2, "signing.key"))
    hub.publish(out3, device=DEV_ID, keys=k2)
    d.poll_now()
    st = fleet.report(state_is("REJECTED", 3), 60, "revision 3 (signed by S2) REJECTED")
    assert "not trusted" in st["message"], st
    assert d.api("GET", "/v1/keys")[1]["serial"] == 1
    assert "keys document from the hub refused" in d.log()
    assert d.running() == 2 and not os.path.exists(os.path.join(d.storage, "keys", "2"))


HOSTILE = ["tampered-object", "tampered-document", "downgrade", "endless-pointer",
           "endless-object"]


@pytest.mark.parametrize("attack", HOSTILE)
def test_a_lying_hub_gets_nothing_installed_and_the_reason_reported(fleet, attack):
    d, hub = fleet.dev, fleet.hub
    d.install(d.build([ctr("a")], revision=2, groups=GROUPS))
    proxy = fleet.proxy()
    d.boot_hub(proxy.url)
    d.wait_state("a", "READY")
    fleet.report(lambda s: True, 30, "the first report")
    before = d.objects(), d.installed()
    pid = d.containers()["a"]["pid"]

    new = ctr("n", rootfs=d.variant("new", blob=2 << 20))
    if attack == "downgrade":
        out = d.build([ctr("a"), new], revision=1, groups=GROUPS, name="old1")
    else:
        out = d.build([ctr("a"), new], revision=3, groups=GROUPS)
    obj = helpers.revision_doc(out)["containers"][1]["rootfs"]
    good_obj = helpers.object_path(out, obj["object"]).read_bytes()
    hub.publish(out, device=DEV_ID)
    desired = os.path.join(hub.device_dir(DEV_ID), "desired")
    rev = helpers.revision_doc(out)["revision"]
    if attack == "tampered-object":
        bad = bytearray(good_obj)
        bad[len(bad) // 2] ^= 1
        replace_file(hub.object_path(obj["object"]), bytes(bad))
        want = state_is("DOWNLOADING", rev, "hub-digest")
    elif attack == "tampered-document":
        p = json.loads(open(desired).read())
        assert "n" in p["document"]
        p["document"] = p["document"].replace('"name": "n"', '"name": "m"')
        replace_file(desired, json.dumps(p).encode())
        want = state_is("REJECTED", rev, "bad-signature")
    elif attack == "downgrade":
        want = state_is("REJECTED", rev, "downgrade")
    elif attack == "endless-pointer":
        proxy.inject(r"/desired$", "endless")
        want = lambda s: s.get("reason") == "hub-pointer"
    else:
        proxy.inject(r"^/v1/objects/", "endless")
        want = lambda s: s.get("revision") == rev and s.get("reason") in ("hub-size",
                                                                           "hub-digest")
    d.poll_now()
    st = fleet.report(want, 60, attack)
    assert st["running"] == 2 and st["committed"] == 2, st
    # nothing unverified entered the store; nothing new is installed; what
    # runs keeps running; the control API answers
    assert (d.objects(), d.installed()) == before
    assert d.containers()["a"]["pid"] == pid and d.running() == 2
    staged = d.staged()
    # the staging area holds at most one object being fetched and one pointer
    assert sum(staged.values()) <= obj["size"] + POINTER_MAX, staged
    if attack in ("tampered-document", "downgrade", "endless-pointer"):
        assert not proxy.requests("/v1/objects/"), "fetched objects of a refused pointer"
    if attack in ("tampered-object", "endless-object"):
        # the hub stops lying: the device completes the same revision
        proxy.clear()
        replace_file(hub.object_path(obj["object"]), good_obj)
        d.poll_now()
        fleet.report(state_is("DONE", rev), 90, "revision %d DONE after the repair" % rev)
        assert set(d.objects()) == set(before[0]) | {obj["object"][7:]}
        assert not [f for f in d.staged() if f.endswith(".part")], d.staged()
    elif attack == "endless-pointer":
        proxy.clear()
        d.poll_now()
        fleet.report(state_is("DONE", rev), 90, "revision %d DONE once the pointer is sane" % rev)
    else:
        assert d.revision(rev)["state"] == "REJECTED"
        assert (d.objects(), d.installed()) == before


def test_hub_unreachable_device_keeps_running_backs_off_and_recovers(fleet):
    d, hub = fleet.dev, fleet.hub
    d.install(d.build([ctr("a")], revision=1, groups=GROUPS))
    proxy = fleet.proxy()
    poll_s = 5
    d.boot_hub(proxy.url, poll_s=poll_s)
    d.wait_state("a", "READY")
    fleet.report(lambda s: True, 30, "the first report")
    pid = d.containers()["a"]["pid"]
    outage = 300 if LONG else 60

    hub.stop()
    t0 = time.monotonic()
    out2 = d.build([ctr("a"), ctr("b", rootfs=d.variant("b"))], revision=2, groups=GROUPS)
    hub.publish(out2, device=DEV_ID)  # waiting for the hub to come back
    slowest = 0.0
    while time.monotonic() - t0 < outage:
        a = time.monotonic()
        st, body = api(d.sock, "GET", "/v1/status", timeout=5)
        slowest = max(slowest, time.monotonic() - a)
        assert st == 200 and body["revision"] == 1, (st, body)
        assert d.containers()["a"]["pid"] == pid
        time.sleep(1)
    assert slowest < 3.0, "the control API stalled for %.2fs during the outage" % slowest
    polls = [t for t, m, p in proxy.requests("/desired$") if t >= t0]
    gaps = [b - a for a, b in zip(polls, polls[1:])]
    print("polls during a %ds outage (poll_s %d): gaps %s" % (outage, poll_s,
                                                              ["%.1f" % g for g in gaps]))
    assert len(polls) >= 2, polls
    # without backoff there would be outage/poll_s polls; with it each wait doubles
    assert len(polls) <= 2 + math.log2(outage / poll_s) + 1, gaps
    # each wait doubles, with +-20% jitter: 2 x 0.8 / 1.2 = 1.33 at worst
    assert all(b > 1.2 * a for a, b in zip(gaps, gaps[1:])), gaps
    assert gaps[-1] <= 3600 * 1.2

    hub.start()
    # recovery by itself, at the next backed-off poll (at most twice the last gap)
    wait = 2.4 * (gaps[-1] if gaps else poll_s) + 30
    st = fleet.report(state_is("DONE", 2), wait, "revision 2 DONE after the outage")
    assert st["running"] == 2 and d.containers()["a"]["pid"] == pid
