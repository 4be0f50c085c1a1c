"""Signing-key rotation (trails/REVISION.md "Signing keys"), end to end on a
sandbox device: the roots on the image (the device's trust dir) sign a keys
document naming the signing keys a build server holds; a higher serial
replaces it. Everything goes through what a user has: cairn-pack keygen /
keys / sign / build, cairnctl keys / keys install / install --run, and the
control API (GET and PUT /v1/keys, PUT /v1/revisions/REV).

The story, on one device:
 1. fresh: only the roots sign (serial 0, no signing keys);
 2. serial 1 [S1], signed by the root, installed with `cairnctl keys install`;
 3. revision 2 signed by S1 alone runs to DONE;
 4. serial 2 [S2] would strand the committed revision 2: refused, nothing kept;
 5. revision 3 signed by S1 and S2 runs to DONE; now serial 2 [S2] installs,
    and the same document again is a no-op;
 6. revision 4 signed by the revoked S1 is refused, nothing of it installed;
 7. a replayed serial, a document a signing key signed, malformed documents
    and request bodies are refused naming the field, nothing changes;
 8. a restart keeps serial 2 in effect and revision 3 running;
 9. cairn (PID 1, the orchestrator) never died along the way.

Documents with deliberate faults are signed here with the openssl command
line (a valid signature over invalid content): cairn-pack would not write
them."""
import base64
import hashlib
import json
import os
import re
import subprocess
from pathlib import Path

import pytest

import helpers
from device import sandbox_device

SLEEP = ["/bin/probe", "sleep", "9999999"]
GROUPS = [{"name": "app", "timeout_s": 20}]
WAIT = "60"


@pytest.fixture
def dev():
    with sandbox_device("cairn-keys-") as d:
        yield d


# ---------------------------------------------------------------- helpers

def ctl(sock, *args, timeout=120):
    b = helpers.build_dir() / "cairnctl"
    if not b.exists():
        pytest.fail(f"{b} missing: run `make` first")
    return helpers.run([b, "--socket", sock, *args], timeout=timeout)


def pem_id(pem):
    """Key id of a PEM public key: sha256 of its DER SubjectPublicKeyInfo."""
    body = "".join(l for l in pem.strip().splitlines() if not l.startswith("-----"))
    return "sha256:" + hashlib.sha256(base64.b64decode(body)).hexdigest()


def key_id(pub):
    return pem_id(Path(pub).read_text())


class Key:
    """A key pair in directory d, made by cairn-pack keygen unless it exists."""

    def __init__(self, d):
        if not (Path(d) / "signing.key").exists():
            helpers.pack_ok("keygen", d)
        self.key, self.pub = Path(d) / "signing.key", Path(d) / "signing.pub"
        self.id = key_id(self.pub)
        self.pem = self.pub.read_text()


def openssl(*args, input=None):
    r = subprocess.run(["openssl", *map(str, args)], capture_output=True, input=input,
                       timeout=60)
    assert r.returncode == 0, (args, r.stderr.decode(errors="replace"))
    return r.stdout


def raw_sig(doc, *keys):
    """A cairn-signature@1 text over the exact bytes of doc, by each private
    key file, made without cairn (openssl): for documents cairn-pack refuses."""
    entries = []
    for k in keys:
        spki = openssl("pkey", "-in", k, "-pubout", "-outform", "DER")
        der = openssl("dgst", "-sha256", "-sign", k, input=doc.encode())
        entries.append({"alg": "ecdsa-p256-sha256",
                        "keyid": "sha256:" + hashlib.sha256(spki).hexdigest(),
                        "sig": base64.b64encode(der).decode()})
    return json.dumps({"spec": "cairn-signature@1", "signatures": entries}) + "\n"


def keys_out(dev, name, serial, pubs, signers, threshold=None):
    """OUT holding keys.json (cairn-pack keys) and keys.sig (cairn-pack sign)."""
    out = helpers.keys_doc(Path(dev.root) / name, serial, pubs, signers, threshold)
    assert (out / "keys.json").exists() and (out / "keys.sig").exists(), sorted(os.listdir(out))
    assert not (out / "revision.sig").exists(), "cairn-pack sign signed the wrong file"
    return out


def doc_of(out):
    return (Path(out) / "keys.json").read_text(), (Path(out) / "keys.sig").read_text()


def put_keys(dev, doc, sig):
    return dev.api("PUT", "/v1/keys", {"document": doc, "signature": sig})


def get_keys(dev):
    st, body = dev.api("GET", "/v1/keys")
    assert st == 200, (st, body)
    return body


def stored(dev):
    """What <storage>/keys holds: {entry: {file: bytes}} (hidden entries too)."""
    top = Path(dev.storage) / "keys"
    if not top.exists():
        return {}
    out = {}
    for e in sorted(os.listdir(top)):
        p = top / e
        out[e] = {f: (p / f).read_bytes() for f in sorted(os.listdir(p))} if p.is_dir() else None
    return out


def build_rev(dev, revision, signers, rootfs=None, name=None, **ctr):
    """A revision with one container `web` (ctr: more of its members), built
    by cairn-pack and signed by exactly the given private keys (in order)."""
    c = {"name": "web", "group": "app", "exec": SLEEP,
         "rootfs": {"dir": rootfs or dev.rootfs()}}
    c.update(ctr)
    spec = {"spec": "cairn-revision@1", "revision": revision,
            "created": "2026-11-21T10:00:00Z", "groups": GROUPS, "containers": [c]}
    out = Path(dev.root) / (name or "rev%d" % revision)
    spec_path = Path(str(out) + ".spec.json")
    spec_path.write_text(json.dumps(spec, indent=1))
    helpers.pack_ok("build", spec_path, "--out", out)
    for k in signers:
        helpers.pack_ok("sign", out, "--key", k)
    sig = json.loads((out / "revision.sig").read_text())
    assert len(sig["signatures"]) == len(signers), sig
    return out


def offer(dev, out):
    doc = (Path(out) / "revision.json").read_text()
    sig = (Path(out) / "revision.sig").read_text()
    rev = json.loads(doc)["revision"]
    return dev.api("PUT", "/v1/revisions/%d" % rev, {"document": doc, "signature": sig})


def install_run(dev, out, rev):
    r = ctl(dev.sock, "install", out, "--run", "--wait-timeout", WAIT)
    assert r.returncode == 0, (r.stdout, r.stderr, dev.log()[-3000:])
    assert r.stdout.endswith("revision %d: DONE\n" % rev), r.stdout
    st = dev.api("GET", "/v1/status")[1]
    assert st["revision"] == rev and st["committed"] == rev, st


def alive(dev, pid1, orch):
    """cairn still runs, with the same PID 1 and orchestrator, no death recorded."""
    assert dev.proc is not None and dev.proc.poll() is None, dev.log()[-3000:]
    assert dev.pid1() == pid1, "the namespace's PID 1 changed"
    assert dev.orchestrator() == orch, "the orchestrator was restarted"
    assert not os.path.exists(os.path.join(dev.storage, "pid1-last-death.json"))


def keys_view(serial, root, signing, threshold=1):
    return {"serial": serial, "roots": [root.id], "roots_threshold": 1,
            "keys": [k.id for k in signing], "threshold": threshold}


# ---------------------------------------------------------------- the story

def test_signing_key_rotation_end_to_end(dev):
    root = Key(dev.keys)  # the device's root: made by Device, copied into its trust dir
    assert sorted(os.listdir(dev.trust)) == ["signing.pub"]
    s1 = Key(Path(dev.root) / "s1")
    s2 = Key(Path(dev.root) / "s2")
    assert len({root.id, s1.id, s2.id}) == 3

    dev.install(dev.build([{"name": "web", "group": "app", "exec": SLEEP}], revision=1,
                          groups=GROUPS))
    dev.boot()
    dev.wait_state("web", "STARTED")
    pid1, orch = dev.pid1(), dev.orchestrator()

    # -- 1. fresh device: the roots only
    k = get_keys(dev)
    assert k["serial"] == 0 and k["keys"] == [], k
    assert k["roots"] == [root.id] and k["roots_threshold"] == 1, k
    assert k == keys_view(0, root, [], threshold=0), k  # ctrl/API.md: threshold 0 here
    assert stored(dev) == {}

    # -- 2. serial 1 [S1], signed by the root, through cairnctl
    out1 = keys_out(dev, "keys1", 1, [s1.pub], [root.key])
    doc1, sig1 = doc_of(out1)
    d = json.loads(doc1)
    assert (d["spec"], d["serial"], d["threshold"]) == ("cairn-keys@1", 1, 1), d
    assert [pem_id(p) for p in d["keys"]] == [s1.id], d
    assert [e["keyid"] for e in json.loads(sig1)["signatures"]] == [root.id], sig1
    r = ctl(dev.sock, "keys", "install", out1)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert get_keys(dev) == keys_view(1, root, [s1])
    r = ctl(dev.sock, "keys")
    assert r.returncode == 0, r.stderr
    assert s1.id[:19] in r.stdout and root.id[:19] in r.stdout, r.stdout
    assert re.search(r"(?im)serial\W+1\b", r.stdout), r.stdout
    r = ctl(dev.sock, "--json", "keys")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == keys_view(1, root, [s1])
    assert stored(dev) == {"1": {"keys.json": doc1.encode(), "keys.sig": sig1.encode()}}

    # -- 3. a revision signed by S1 alone is accepted and committed; offline,
    # cairn-pack verify says the same with the keys document, not without
    out2 = build_rev(dev, 2, [s1.key])
    r = helpers.pack("verify", out2, "--trust", dev.trust)
    assert r.returncode == 1 and "not trusted" in r.stderr, (r.stdout, r.stderr)
    r = helpers.pack("verify", out2, "--trust", dev.trust, "--keys", out1)
    assert r.returncode == 0 and "1/1 signatures valid" in r.stdout, (r.stdout, r.stderr)
    install_run(dev, out2, 2)

    # -- 4. serial 2 [S2] would leave the committed revision 2 unverifiable
    out_s2 = keys_out(dev, "keys2", 2, [s2.pub], [root.key])
    doc2, sig2 = doc_of(out_s2)
    st, body = put_keys(dev, doc2, sig2)
    assert st == 422, (st, body)
    assert body["field"] == "keys", body
    assert "revision 2" in body["error"], body
    r = ctl(dev.sock, "keys", "install", out_s2)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "revision 2" in r.stderr and r.stderr.endswith("(field keys)\n"), r.stderr
    assert get_keys(dev) == keys_view(1, root, [s1])
    assert stored(dev) == {"1": {"keys.json": doc1.encode(), "keys.sig": sig1.encode()}}

    # -- 5. first a revision signed by both, then the rotation
    out3 = build_rev(dev, 3, [s1.key, s2.key])
    install_run(dev, out3, 3)
    st, body = put_keys(dev, doc2, sig2)
    assert st == 200, (st, body)
    assert body == dict(keys_view(2, root, [s2]), changed=True), body
    assert get_keys(dev) == keys_view(2, root, [s2])
    st, body = put_keys(dev, doc2, sig2)  # the same document again: nothing to do
    assert st == 200, (st, body)
    assert body == dict(keys_view(2, root, [s2]), changed=False), body
    r = ctl(dev.sock, "keys", "install", out_s2)
    assert r.returncode == 0, (r.stdout, r.stderr)
    after2 = {"2": {"keys.json": doc2.encode(), "keys.sig": sig2.encode()}}
    assert stored(dev) == after2, "older serials are removed"

    # -- 6. S1 is revoked: a revision it alone signed is refused
    r4fs = dev.rootfs("rootfs-r4")
    Path(r4fs, "etc/r4").write_text("four\n")  # its own object
    out4 = build_rev(dev, 4, [s1.key], rootfs=r4fs)
    obj4 = helpers.revision_doc(out4)["containers"][0]["rootfs"]["object"]
    st, body = offer(dev, out4)
    assert st == 422, (st, body)
    assert body["field"] == "signatures", body
    assert "not trusted" in body["error"] and s1.id[:19] in body["error"], body
    assert "serial 2" in body["error"], body  # names the signing keys' count too
    r = ctl(dev.sock, "install", out4)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "not trusted" in r.stderr and r.stderr.endswith("(field signatures)\n"), r.stderr
    st, rev4 = dev.api("GET", "/v1/revisions/4")
    assert st == 404 or (st == 200 and rev4["state"] == "REJECTED"), (st, rev4)
    assert not os.path.exists(os.path.join(dev.storage, "trails", "4"))
    assert not os.path.exists(helpers.object_path(dev.storage, obj4))
    st, status = dev.api("GET", "/v1/status")
    assert status["revision"] == 3 and status["committed"] == 3, status

    # -- 7. refusals: each names its field, nothing changes
    s3 = Key(Path(dev.root) / "s3")
    p384 = Path(dev.root) / "p384.pem"
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384", "-out", p384)
    p384_pub = openssl("pkey", "-in", p384, "-pubout").decode()

    def doc(**kw):
        d = {"spec": "cairn-keys@1", "serial": 3, "threshold": 1, "keys": [s2.pem, s3.pem]}
        d.update(kw)
        return json.dumps({k: v for k, v in d.items() if v is not None}) + "\n"

    good3 = doc()
    cases = [
        # (what, document, signature, status, field, words in the message)
        ("serial 1 replayed", doc1, sig1, 409, "serial", ()),
        ("another document of serial 2", doc(serial=2), raw_sig(doc(serial=2), root.key),
         409, "serial", ()),
        ("signed by a signing key", good3, raw_sig(good3, s2.key), 422, "signatures", ()),
        ("signed by the revoked key", good3, raw_sig(good3, s1.key), 422, "signatures", ()),
        ("one byte changed after signing", good3.replace('"serial": 3', '"serial":  3'),
         raw_sig(good3, root.key), 422, "signatures", ()),
        ("bad spec", doc(spec="cairn-keys@2"), raw_sig(doc(spec="cairn-keys@2"), root.key),
         422, "spec", ()),
        ("serial 0", doc(serial=0), raw_sig(doc(serial=0), root.key), 422, "serial", ()),
        ("threshold 0", doc(threshold=0), raw_sig(doc(threshold=0), root.key),
         422, "threshold", ()),
        ("threshold above the keys", doc(threshold=3), raw_sig(doc(threshold=3), root.key),
         422, "threshold", ()),
        ("no keys", doc(keys=[]), raw_sig(doc(keys=[]), root.key), 422, "keys", ()),
        ("duplicate key", doc(keys=[s2.pem, s3.pem, s2.pem]),
         raw_sig(doc(keys=[s2.pem, s3.pem, s2.pem]), root.key), 422, "keys[2]", ("keys[0]",)),
        ("not PEM", doc(keys=[s2.pem, "hello"]), raw_sig(doc(keys=[s2.pem, "hello"]), root.key),
         422, "keys[1]", ()),
        ("not P-256", doc(keys=[s2.pem, p384_pub]),
         raw_sig(doc(keys=[s2.pem, p384_pub]), root.key), 422, "keys[1]", ()),
        ("unknown member", doc(extra=1), raw_sig(doc(extra=1), root.key), 422, "extra", ()),
        ("missing member", doc(threshold=None), raw_sig(doc(threshold=None), root.key),
         422, "threshold", ()),
    ]
    seen = []
    for what, d, s, want_st, want_field, words in cases:
        st, body = put_keys(dev, d, s)
        ok = (st == want_st and isinstance(body, dict) and body.get("field") == want_field
              and all(w in body.get("error", "") for w in words))
        seen.append((what, ok, st, body))
        assert get_keys(dev) == keys_view(2, root, [s2]), what
        assert stored(dev) == after2, what
    bad = [x for x in seen if not x[1]]
    assert not bad, "\n".join("%s: got %s %r" % (w, st, b) for w, _, st, b in bad)

    # the request body itself
    bodies = [
        ("not JSON", "nope", None),
        ("no signature", {"document": good3}, "signature"),
        ("no document", {"signature": raw_sig(good3, root.key)}, "document"),
        ("unknown key", {"document": good3, "signature": raw_sig(good3, root.key), "x": ""}, "x"),
        ("document not a string", {"document": 3, "signature": raw_sig(good3, root.key)},
         "document"),
    ]
    seen = []
    for what, b, field in bodies:
        st, body = dev.api("PUT", "/v1/keys", b)
        ok = st == 400 and isinstance(body, dict) and (field is None or body.get("field") == field)
        seen.append((what, ok, st, body))
        assert get_keys(dev) == keys_view(2, root, [s2]), what
        assert stored(dev) == after2, what
    bad = [x for x in seen if not x[1]]
    assert not bad, "\n".join("%s: got %s %r" % (w, st, b) for w, _, st, b in bad)

    # a refusal through cairnctl: exit 1, the device's message and field
    r = ctl(dev.sock, "keys", "install", out1)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert r.stderr.startswith("cairnctl: ") and r.stderr.endswith("(field serial)\n"), r.stderr

    # -- 9 (so far). nothing died
    alive(dev, pid1, orch)

    # -- 8. a restart keeps serial 2 and revision 3
    assert dev.stop() == 0, dev.log()[-3000:]
    dev.boot()
    dev.wait_state("web", "STARTED")
    assert get_keys(dev) == keys_view(2, root, [s2])
    assert stored(dev) == after2
    st, status = dev.api("GET", "/v1/status")
    assert status["revision"] == 3 and status["committed"] == 3, status
    st, rev3 = dev.api("GET", "/v1/revisions/3")
    assert st == 200 and rev3["state"] == "DONE", rev3
    # the revocation holds after the restart; S2 and the roots still sign
    st, body = offer(dev, build_rev(dev, 5, [s1.key], name="rev5-s1"))
    assert st == 422 and body["field"] == "signatures" and "not trusted" in body["error"], body
    st, body = offer(dev, build_rev(dev, 5, [s2.key], name="rev5-s2"))
    assert st in (200, 202), (st, body)
    st, body = offer(dev, build_rev(dev, 6, [root.key]))
    assert st in (200, 202), (st, body)

    # -- 9. PID 1 and the orchestrator of this boot are alive; nothing recorded a death
    alive(dev, dev.pid1(), dev.orchestrator())
    assert dev.stop() == 0, dev.log()[-3000:]


def test_a_rotation_never_strands_a_try_in_progress(dev):
    """A threshold above 1 counts distinct signing keys; a keys document that
    the revision being tried would not verify under is refused while the try
    runs, and accepted once a revision it does verify is committed."""
    root = Key(dev.keys)
    s1, s2, s3 = (Key(Path(dev.root) / n) for n in ("s1", "s2", "s3"))
    dev.install(dev.build([{"name": "web", "group": "app", "exec": SLEEP}], revision=1,
                          groups=GROUPS))
    dev.boot()
    dev.wait_state("web", "STARTED")
    pid1, orch = dev.pid1(), dev.orchestrator()

    # serial 1: S1 and S2, both needed
    out1 = keys_out(dev, "keys1", 1, [s1.pub, s2.pub], [root.key], threshold=2)
    assert json.loads(doc_of(out1)[0])["threshold"] == 2
    r = ctl(dev.sock, "keys", "install", out1)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert get_keys(dev) == keys_view(1, root, [s1, s2], threshold=2)

    # one of the two is not enough
    st, body = offer(dev, build_rev(dev, 2, [s1.key], name="rev2-s1"))
    assert st == 422 and body["field"] == "signatures", (st, body)
    assert "serial 1: 1 of 2" in body["error"], body

    # both: revision 2 is tried; it stays TESTING until the test lets it be READY
    gate = ("while [ ! -e /data/go ]; do sleep 0.1; done; "
            "/bin/probe ready && exec /bin/probe sleep 9999999")
    out2 = build_rev(dev, 2, [s1.key, s2.key], exec=["/bin/sh", "-c", gate],
                     status_goal="READY",
                     volumes=[{"name": "data", "path": "/data", "persistence": "permanent"}])
    r = ctl(dev.sock, "install", out2, "--run", "--no-wait")
    assert r.returncode == 0, (r.stdout, r.stderr)
    dev.wait(lambda: dev.api("GET", "/v1/revisions/2")[1].get("state") == "TESTING", 20,
             "revision 2 TESTING")

    # serial 2 [S3]: the committed revision 1 (signed by the root) would still
    # verify, the try would not
    out_s3 = keys_out(dev, "keys2-s3", 2, [s3.pub], [root.key])
    st, body = put_keys(dev, *doc_of(out_s3))
    assert st == 422 and body["field"] == "keys", (st, body)
    assert "revision 2" in body["error"], body
    assert get_keys(dev) == keys_view(1, root, [s1, s2], threshold=2)
    assert sorted(stored(dev)) == ["1"]
    assert dev.api("GET", "/v1/revisions/2")[1]["state"] == "TESTING"

    # the try commits; then a document keeping S1 installs, one without S1 or S2 still not
    open(os.path.join(dev.storage, "volumes/permanent/web/data/go"), "w").close()
    dev.wait(lambda: dev.api("GET", "/v1/revisions/2")[1].get("state") in ("DONE", "FAILED"),
             30, "revision 2 settled")
    assert dev.api("GET", "/v1/revisions/2")[1]["state"] == "DONE", dev.log()[-3000:]
    st, body = put_keys(dev, *doc_of(out_s3))
    assert st == 422 and body["field"] == "keys" and "revision 2" in body["error"], (st, body)
    out_s13 = keys_out(dev, "keys2-s13", 2, [s1.pub, s3.pub], [root.key])
    st, body = put_keys(dev, *doc_of(out_s13))
    assert st == 200, (st, body)
    assert body == dict(keys_view(2, root, [s1, s3]), changed=True), body
    assert sorted(stored(dev)) == ["2"]
    alive(dev, pid1, orch)


def test_a_factory_provisions_a_revision_signed_by_a_signing_key_with_its_keys(dev):
    """cairn-pack install --keys: the keys document goes into the storage with
    the factory revision, and the device boots it with both in effect."""
    root = Key(dev.keys)
    s1 = Key(Path(dev.root) / "s1")
    out1 = build_rev(dev, 1, [s1.key])
    k1 = keys_out(dev, "keys1", 1, [s1.pub], [root.key])
    trust = Path(dev.keys) / "signing.pub"
    # without the document the factory cannot install it, and leaves nothing
    r = helpers.pack("install", out1, "--storage", dev.storage, "--trust", trust)
    assert r.returncode == 1 and "not trusted" in r.stderr, (r.stdout, r.stderr)
    assert stored(dev) == {} and not (Path(dev.storage) / "trails" / "1").exists()
    # a document the roots did not sign is refused the same way
    bad = keys_out(dev, "keys-bad", 1, [s1.pub], [s1.key])
    r = helpers.pack("install", out1, "--storage", dev.storage, "--trust", trust, "--keys", bad)
    assert r.returncode == 1 and "keys.sig" in r.stderr, (r.stdout, r.stderr)
    assert stored(dev) == {}
    helpers.pack_ok("install", out1, "--storage", dev.storage, "--trust", trust, "--keys", k1)
    doc1, sig1 = doc_of(k1)
    assert stored(dev) == {"1": {"keys.json": doc1.encode(), "keys.sig": sig1.encode()}}
    dev.boot()
    assert get_keys(dev) == keys_view(1, root, [s1])
    st = dev.wait(lambda: (lambda s: s if s["phase"] == "ready" else None)(
        dev.api("GET", "/v1/status")[1]), 30, "revision 1 ready")
    assert st["revision"] == 1 and st["committed"] == 1, st
    assert dev.stop() == 0
