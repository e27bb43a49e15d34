"""Record layout 2 (a string claimed with SET NX GET) and a fleet that
mixes layouts and versions on one Redis, as during a rolling upgrade
(doc/record.md, "Rolling out layout 2").

- record_layout = 2: every answer of the request table holds, and the
  record is a string readable with GET;
- two processes of this version on one Redis, one writing each layout:
  each replays, refuses and waits on the other's records; no key runs
  twice;
- this version beside 0.2.0 (built here from its commit in the
  repository's own history), the version every deployment runs before:
  with record_layout = 1 both replay each other's records; with
  record_layout = 2, 0.2.0 answers a string record 503 STORE_UNAVAILABLE
  with Retry-After and forwards nothing, and this version still replays
  0.2.0's hashes;
- record_layout changes on SIGHUP, and what was written before stays
  readable.
"""
import os
import shutil
import subprocess
import threading
import time

import pytest

from conftest import ROOT, wait_until
from test_proxy import ORDER, assert_error, key

OLD_COMMIT = "09187cd"        # 0.2.0, the layout-1-only version


def layout(p, n):
    return {"redis_opts": {"record_layout": str(n)}}


def records(redis):
    """{key: (type, value or state)} of every record in Redis."""
    out = {}
    for k in redis.cmd("KEYS", "idem:*"):
        t = redis.cmd("TYPE", k)
        t = t.decode() if isinstance(t, bytes) else t      # (a simple-string reply)
        if t == "string":
            out[k] = (t, redis.cmd("GET", k))
        else:
            out[k] = (t, redis.cmd("HGET", k, "state").decode())
    return out


def the_record(redis):
    r = records(redis)
    assert len(r) == 1, r
    return list(r.values())[0]


@pytest.fixture(scope="module")
def old_bin(tmp_path_factory):
    """0.2.0's binary, from its commit (git archive | make): a clean clone of
    this repository has it; a checkout without history fails here."""
    d = tmp_path_factory.mktemp("idemproxy-0.2.0")
    if shutil.which("git") is None:
        pytest.fail("git is needed to build 0.2.0 for the mixed-version tests")
    arch = subprocess.run(["git", "-C", ROOT, "archive", OLD_COMMIT], capture_output=True)
    assert arch.returncode == 0, ("no commit %s in this repository's history: %s"
                                  % (OLD_COMMIT, arch.stderr.decode()))
    subprocess.run(["tar", "-x", "-C", str(d)], input=arch.stdout, check=True)
    env = dict(os.environ, CFLAGS="-O0 -g")
    # a plain build, whatever make this runs under (make e2e SANITIZER=...
    # passes its variables down through MAKEFLAGS)
    for v in ("SANITIZER", "MAKEFLAGS", "MAKEOVERRIDES", "MFLAGS", "MAKELEVEL"):
        env.pop(v, None)
    b = subprocess.run(["make", "-C", str(d), "proxy/idemproxy"], capture_output=True,
                       env=env, timeout=300)
    assert b.returncode == 0, b.stderr.decode()[-2000:]
    return str(d / "proxy" / "idemproxy")


def first_and_replay(writer, reader, upstream, k):
    """writer runs k's first request, reader replays it; one execution."""
    a = writer.post(body=ORDER, key=k)
    assert a.status == 201 and a.header("Idempotent-Replayed") == "false", a
    b = reader.post(body=ORDER, key=k)
    assert b.status == 201 and b.header("Idempotent-Replayed") == "true", b
    assert b.body == a.body
    assert upstream.count(key=k) == 1
    return a


def slow_first(writer, upstream, k):
    """writer's first request for k, 0.6 s at the upstream, in a thread:
    (thread, box); once this returns the upstream has it (in flight)."""
    box = {}
    t = threading.Thread(target=lambda: box.update(
        r=writer.post(body=ORDER, key=k, headers={"X-Test-Sleep": "0.6"})))
    t.start()
    assert wait_until(lambda: upstream.count(key=k) == 1, 5)
    return t, box


# ------------------------------------------------------------ layout 2

def test_layout2_request_table(proxy, upstream, redis):
    p = proxy(**layout(None, 2))
    k = key()
    a = p.post(body=ORDER, key=k)
    assert a.status == 201 and a.header("Idempotent-Replayed") == "false", a
    t, v = the_record(redis)
    assert t == "string" and v.startswith(b"2 d "), (t, v[:80])
    assert v.endswith(a.body), v
    b = p.post(body={"qty": 1, "item": "book"}, key=k)     # the same, canonical JSON
    assert b.status == 201 and b.header("Idempotent-Replayed") == "true", b
    assert b.body == a.body and b.header("Location") == a.header("Location")
    assert_error(p.post(body={"item": "pen", "qty": 1}, key=k), 409, "IDEMPOTENCY_KEY_MISMATCH")
    assert upstream.count() == 1


def test_layout2_in_flight_unstored_and_released(proxy, upstream, redis):
    p = proxy({"orders": {"max_store": "1k", "lease": "5s"}}, **layout(None, 2))
    # in flight: 409 with a Retry-After no longer than the lease
    k = key()
    box = {}
    t = threading.Thread(target=lambda: box.update(
        r=p.post(body=ORDER, key=k, headers={"X-Test-Sleep": "1"})))
    t.start()
    assert wait_until(lambda: upstream.count(key=k) == 1, 5)
    r = p.post(body=ORDER, key=k, headers={"X-Test-Sleep": "1"})
    assert_error(r, 409, "REQUEST_PROCESSING")
    assert 1 <= int(r.header("Retry-After")) <= 5
    t.join(10)
    assert box["r"].status == 201
    # over max_store: executed, not stored
    k2 = key()
    big = p.post(body=ORDER, key=k2, headers={"X-Test-Body-Size": "4096"})
    assert big.status == 201 and len(big.body) >= 4096, big
    v = redis.cmd("GET", [n for n, (ty, val) in records(redis).items()
                          if ty == "string" and val.startswith(b"2 u ")][0])
    assert v.startswith(b"2 u ")
    assert_error(p.post(body=ORDER, key=k2, headers={"X-Test-Body-Size": "4096"}), 409,
                 "RESPONSE_NOT_STORED")
    assert upstream.count(key=k2) == 1
    # a released status: the key is free again, a retry executes
    k3 = key()
    assert p.post(body=ORDER, key=k3, headers={"X-Test-Status": "503"}).status == 503
    assert p.post(body=ORDER, key=k3).status == 201
    assert upstream.count(key=k3) == 2


# ------------------------------------------------------------ two layouts, one version

def test_both_layouts_read_each_other(proxy, upstream, redis):
    one = proxy(**layout(None, 1))
    two = proxy(**layout(None, 2))
    for writer, reader in ((one, two), (two, one)):
        k = key()
        first_and_replay(writer, reader, upstream, k)
        assert_error(reader.post(body={"item": "pen"}, key=k), 409, "IDEMPOTENCY_KEY_MISMATCH")
    kinds = sorted(t for t, _ in records(redis).values())
    assert kinds == ["hash", "string"], kinds


def test_claim_of_one_layout_finished_by_its_owner_seen_by_the_other(proxy, upstream, redis):
    """A claim is completed in the layout it was made in, whichever process
    asks meanwhile: in flight at the other, then replayed by it."""
    one = proxy(**layout(None, 1))
    two = proxy(**layout(None, 2))
    for writer, other in ((one, two), (two, one)):
        k = key()
        t, box = slow_first(writer, upstream, k)
        assert_error(other.post(body=ORDER, key=k), 409, "REQUEST_PROCESSING")
        t.join(10)
        assert box["r"].status == 201
        r = other.post(body=ORDER, key=k)
        assert r.header("Idempotent-Replayed") == "true" and r.body == box["r"].body
        assert upstream.count(key=k) == 1


def test_record_layout_on_reload(proxy, upstream, redis):
    p = proxy(**layout(None, 1))
    k1 = key()
    assert p.post(body=ORDER, key=k1).status == 201
    assert all(t == "hash" for t, _ in records(redis).values())
    p.write_config(redis_opts={"record_layout": "2"})
    p.hup()

    def claimed_as_string():
        # a new key each time: one claimed before the reload applied stays a hash
        assert p.post(body=ORDER, key=key()).status == 201
        return any(t == "string" for t, _ in records(redis).values())
    assert wait_until(claimed_as_string, 10, 0.2)
    r = p.post(body=ORDER, key=k1)             # the hash written before: replayed
    assert r.header("Idempotent-Replayed") == "true", r
    assert upstream.count(key=k1) == 1


# ------------------------------------------------------------ 0.2.0 beside this version

def old_proxy(proxy, old_bin):
    p = proxy(start=False)
    p.bin = old_bin
    p.write_config()        # no option 0.2.0 does not know
    p.start()
    return p


def test_old_and_new_with_layout_1_replay_each_other(proxy, upstream, redis, old_bin):
    old = old_proxy(proxy, old_bin)
    new = proxy(**layout(None, 1))
    for writer, reader in ((old, new), (new, old)):
        first_and_replay(writer, reader, upstream, key())
    assert all(t == "hash" for t, _ in records(redis).values())


def test_old_never_forwards_around_a_layout_2_record(proxy, upstream, redis, old_bin):
    """0.2.0 cannot read a string record: 503 with Retry-After, nothing
    forwarded, whatever on_store_error says (it may be a request that ran);
    this version, writing layout 2, still replays 0.2.0's hashes."""
    old = old_proxy(proxy, old_bin)
    new = proxy(**layout(None, 2))
    k = key()
    a = new.post(body=ORDER, key=k)
    assert a.status == 201
    for _ in range(2):
        r = old.post(body=ORDER, key=k)
        assert_error(r, 503, "STORE_UNAVAILABLE")
        assert r.header("Retry-After") == "1"
    assert upstream.count(key=k) == 1
    first_and_replay(old, new, upstream, key())


def test_old_in_flight_claim_respected_by_layout_2(proxy, upstream, redis, old_bin):
    """0.2.0 holds a claim (a hash in flight); this version, writing layout
    2, meets it: WRONGTYPE, then the claim script reads it: 409, not a
    second execution."""
    old = old_proxy(proxy, old_bin)
    new = proxy(**layout(None, 2))
    k = key()
    t, box = slow_first(old, upstream, k)
    assert_error(new.post(body=ORDER, key=k), 409, "REQUEST_PROCESSING")
    t.join(10)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        r = new.post(body=ORDER, key=k)
        if r.status != 409:
            break
        time.sleep(0.1)
    assert r.header("Idempotent-Replayed") == "true" and r.body == box["r"].body, r
    assert upstream.count(key=k) == 1
