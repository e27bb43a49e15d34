"""Out of memory while a request's body is read for its fingerprint: the
client gets 503 STORE_UNAVAILABLE with Retry-After (nothing executed, a retry
is safe), nothing reaches the upstream, the proxy keeps serving; a route in
observe mode forwards instead. Memory runs out on purpose: oomshim.c,
LD_PRELOAD'ed, refuses large allocations once armed."""
import os
import subprocess

import pytest

from conftest import BIN

HERE = os.path.dirname(os.path.abspath(__file__))

# the shim replaces malloc; a sanitizer's allocator cannot be replaced
pytestmark = pytest.mark.skipif(
    any(s in os.path.basename(BIN) for s in ("address", "thread", "memory")),
    reason="LD_PRELOAD malloc shim and a sanitizer allocator do not mix")

MIN = 256 * 1024        # allocations of this size or more fail once armed


@pytest.fixture
def oom_proxy(proxy, tmp_path):
    shim = str(tmp_path / "oomshim.so")
    subprocess.run(["cc", "-shared", "-fPIC", "-O1", "-o", shim,
                    os.path.join(HERE, "oomshim.c")], check=True, timeout=60)
    arm = str(tmp_path / "oom-armed")

    def make(routes):
        p = proxy(routes, start=False, proxy_opts={"max_body": "2m"})
        p.env = dict(os.environ, LD_PRELOAD=shim, OOMSHIM_MIN=str(MIN), OOMSHIM_ARM=arm)
        p.start()
        return p

    make.arm = lambda: open(arm, "w").close()
    make.disarm = lambda: os.unlink(arm)
    return make


# A 330 KB body: linearizing it for the fingerprint needs one 330 KB block.
BIG = "[" + ",".join(['"abcdefgh"'] * 30000) + "]"
# A 60 KB body (linearized below MIN) whose canonical text is five times
# longer: each 1e-7 is written 9.9999999999999995e-8.
SWELLS = "[" + ",".join(["1e-7"] * 12000) + "]"


def assert_503(r):
    assert r.status == 503, r
    assert r.json()["error"]["code"] == "STORE_UNAVAILABLE", r
    assert r.header("Retry-After") == "1", r


@pytest.mark.parametrize("fp", ["json", "raw"])
def test_body_not_linearized(oom_proxy, upstream, fp):
    p = oom_proxy({"orders": {"max_body": "2m", "fingerprint_body": fp}})
    oom_proxy.arm()
    assert_503(p.post(body=BIG, key="oom-big-" + fp))
    assert upstream.count() == 0
    oom_proxy.disarm()
    r = p.post(body=BIG, key="oom-big-" + fp)       # the retry executes once
    assert r.status == 201 and r.header("Idempotent-Replayed") == "false", r
    assert p.post(body=BIG, key="oom-big-" + fp).header("Idempotent-Replayed") == "true"
    assert upstream.count() == 1
    assert p.proc.poll() is None


def test_canonical_text_does_not_fit(oom_proxy, upstream):
    p = oom_proxy({"orders": {"max_body": "2m"}})
    oom_proxy.arm()
    assert_503(p.post(body=SWELLS, key="oom-swells"))
    assert upstream.count() == 0
    oom_proxy.disarm()
    r = p.post(body=SWELLS, key="oom-swells")
    assert r.status == 201 and r.header("Idempotent-Replayed") == "false", r
    assert upstream.count() == 1


def test_observe_mode_forwards(oom_proxy, upstream):
    p = oom_proxy({"orders": {"max_body": "2m", "mode": "observe"}})
    oom_proxy.arm()
    r = p.post(body=SWELLS, key="oom-observe")
    assert r.status == 201, r
    oom_proxy.disarm()
    assert upstream.count() == 1


def test_answer_too_large_for_memory_is_marked_not_stored(oom_proxy, upstream):
    """Memory runs out while a 400 KB answer is put into the Redis command
    that stores it: that one request's answer is passed on, its record
    marked executed-not-stored (so a retry is refused, never executed
    again), and the process goes on serving."""
    p = oom_proxy({"orders": {"max_store": "1m"}})
    big = {"X-Test-Body-Size": "400000"}
    oom_proxy.arm()
    r = p.post(body={}, key="oom-store", headers=big)
    assert r.status == 201 and len(r.body) == 400000, r
    assert r.header("Idempotent-Replayed") == "false", r
    oom_proxy.disarm()
    retry = p.post(body={}, key="oom-store", headers=big)
    assert retry.status == 409 and retry.code() == "RESPONSE_NOT_STORED", retry
    assert upstream.count() == 1
    assert p.post(body={}, key="oom-after").status == 201
    assert p.proc.poll() is None
    assert "out of memory" in p.stderr()
