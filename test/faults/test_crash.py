"""Scenarios 1-3: idemproxy dying at each crash point, two processes on one
Redis, and a process stopped past its lease (the owner-token check)."""
import signal
import threading
import time

import pytest

from conftest import LEASE, ROUTE, new_key, wait_until

INSIDE = LEASE - 0.5     # a retry sent before this (from the first send) is inside the lease


def is_processing(a):
    return a.status == 409 and a.code() == "REQUEST_PROCESSING"


# ------------------------------------------------------------ scenario 1

@pytest.mark.parametrize("point", ["after_claim", "after_send", "after_answer", "after_store"])
def test_crash_point_then_retry_through_a_fresh_process(cluster, point):
    c = cluster
    p1 = c.proxy(crash_at=point)
    p2 = c.proxy()                       # the "fresh process" the retry goes through
    k = new_key(point)
    t0 = time.time()
    # the upstream takes 0.3 s: after_send (100 ms after the hand-off) fires
    # while the request is at the upstream
    a1 = c.send(p1, k, headers={"X-Test-Sleep": "0.3"}, timeout=10)
    assert a1.exc is not None or a1.status is None, "the crashing process answered: %r" % a1
    rc = p1.proc.wait(10)
    p1.intentional_kill = True
    assert rc == -signal.SIGABRT, (rc, p1.stderr())
    assert "fault point reached" in p1.stderr()
    forwarded = point != "after_claim"
    assert len(c.executions(k)) == (1 if forwarded else 0), c.executions(k)

    # inside the lease, through the other process
    a2 = c.send(p2, k)
    assert a2.t0 - t0 < INSIDE, "too slow to retry inside the lease (%.2fs)" % (a2.t0 - t0)
    if point == "after_store":
        assert a2.status == 201 and a2.replayed, a2
        assert a2.n() == c.executions(k)[0]["n"]
    else:
        assert is_processing(a2), a2
        assert a2.header("Retry-After"), a2
        # still claimed a little later, still inside the lease
        time.sleep(max(0.0, min(0.7, INSIDE - (time.time() - t0) - 0.2)))
        a2b = c.send(p2, k)
        if a2b.t0 - t0 < INSIDE:
            assert is_processing(a2b), a2b
    assert len(c.executions(k)) == (1 if forwarded else 0)

    # after the lease: a client retrying until it gets an answer
    a3 = c.until(p2, k, lambda a: not is_processing(a), timeout=LEASE + 6, step=0.1)
    assert a3.status == 201, a3
    execs = c.executions(k)
    if point == "after_store":
        assert a3.replayed and len(execs) == 1, (a3, execs)
    else:
        assert a3.t0 - t0 >= LEASE - 0.3, "claim freed before its lease: %.2fs" % (a3.t0 - t0)
        assert not a3.replayed, a3
        # after_claim never reached the upstream: one execution in total;
        # after_send/after_answer: a second one, only after the lease (documented)
        assert len(execs) == (1 if point == "after_claim" else 2), execs
        assert a3.n() == execs[-1]["n"]
    a4 = c.send(p2, k)
    assert a4.status == 201 and a4.replayed and a4.body == a3.body, a4
    c.check(allow_after_lease=point in ("after_send", "after_answer"),
            max_exec=2 if point in ("after_send", "after_answer") else 1)


# ------------------------------------------------------------ scenario 2

@pytest.mark.parametrize("in_flight", ["reject", "wait"])
def test_two_processes_one_redis_100_duplicates(cluster, in_flight):
    c = cluster
    route = dict(ROUTE, in_flight=in_flight, wait_timeout="5s")
    ps = [c.proxy({"orders": route}), c.proxy({"orders": route})]
    k = new_key("dup")
    n = 100
    barrier = threading.Barrier(n)
    out = [None] * n

    def one(i):
        barrier.wait(10)
        out[i] = c.send(ps[i % 2], k, headers={"X-Test-Sleep": "0.5"}, timeout=20)

    ts = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(30)
    assert all(a is not None and a.exc is None for a in out), [a for a in out if a is None or a.exc][:3]
    fresh = [a for a in out if a.status == 201 and not a.replayed]
    assert len(fresh) == 1, sorted(set((a.status, a.code()) for a in out))
    for a in out:
        if a.status == 201:
            assert a.body == fresh[0].body, a
        else:
            assert in_flight == "reject" and is_processing(a), a
    assert {a.via for a in out if a.status == 201 or is_processing(a)} == {0, 1}
    assert len(c.executions(k)) == 1
    c.check(max_exec=1)


# ------------------------------------------------------------ scenario 3

def test_stopped_process_late_completion_loses_the_owner_check(cluster):
    c = cluster
    p1, p2 = c.proxy(), c.proxy()
    k = new_key("stop")
    box = {}
    t0 = time.time()
    th = threading.Thread(target=lambda: box.setdefault(
        "a", c.send(p1, k, headers={"X-Test-Sleep": "0.3"}, timeout=30)))
    th.start()
    assert wait_until(lambda: len(c.executions(k)) == 1, 5, 0.01)
    p1.proc.send_signal(signal.SIGSTOP)   # its request is at the upstream
    try:
        # the upstream answers into p1's socket while p1 is stopped; wait
        # past the lease, then retry through p2
        time.sleep(max(0.0, LEASE + 0.3 - (time.time() - t0)))
        a2 = c.until(p2, k, lambda a: not is_processing(a), timeout=5)
        assert a2.status == 201 and not a2.replayed, a2
        execs = c.executions(k)
        assert len(execs) == 2 and a2.n() == execs[1]["n"], execs
    finally:
        p1.proc.send_signal(signal.SIGCONT)
    th.join(15)
    a1 = box.get("a")
    assert a1 is not None and a1.exc is None, a1
    # p1 either finished the call (its store fails the owner check and it
    # passes its own answer on, not stored) or its upstream timer fired (504;
    # what we observe: epoll_wait returns EINTR after SIGCONT, so the expired
    # timer runs before the answer is read)
    if a1.status == 201:
        assert a1.n() == execs[0]["n"] and not a1.replayed, a1
        assert wait_until(lambda: "claim lost" in p1.stderr(), 5), p1.stderr()
    else:
        assert a1.status == 504 and a1.code() == "UPSTREAM_TIMEOUT", a1
    # the record is still the second's answer
    time.sleep(0.2)
    recs = c.records()
    assert len(recs) == 1
    (h, _), = recs.values()
    assert h[b"state"] == b"done" and h[b"body"] == a2.body, h
    for p in (p1, p2):
        r = c.send(p, k)
        assert r.status == 201 and r.replayed and r.body == a2.body, r
    assert len(c.executions(k)) == 2
    c.check(allow_after_lease=True, max_exec=2)


def test_late_finisher_cannot_overwrite_a_newer_claim(cluster):
    """The owner-token check itself. With lease > upstream_timeout a
    stopped process's upstream timer always fires first on SIGCONT (504, no
    store), so here the claim is taken away while p1's call is still running
    (the test expires it in Redis, standing in for a lost lease); p2 claims
    anew; p1's completion then must fail the compare-and-set."""
    c = cluster
    p1, p2 = c.proxy(), c.proxy()
    k = new_key("late")
    box = {}
    th1 = threading.Thread(target=lambda: box.setdefault(
        "a1", c.send(p1, k, headers={"X-Test-Sleep": "0.6"}, timeout=10)))
    th1.start()
    assert wait_until(lambda: len(c.executions(k)) == 1, 5, 0.01)
    recs = c.records()
    assert len(recs) == 1
    (name, (h, _)), = recs.items()
    assert h[b"state"] == b"inflight"
    c.losses.append(time.time())         # the claim is gone: a new epoch for the checker
    assert c.redis.cmd("PEXPIRE", name, 1) == 1
    time.sleep(0.05)
    th2 = threading.Thread(target=lambda: box.setdefault(
        "a2", c.send(p2, k, headers={"X-Test-Sleep": "0.8"}, timeout=10)))
    th2.start()
    assert wait_until(lambda: len(c.executions(k)) == 2, 5, 0.01)
    th1.join(10)
    a1 = box.get("a1")
    # p1's answer is passed on, but its store lost the owner check
    assert a1 is not None and a1.status == 201 and not a1.replayed, a1
    assert wait_until(lambda: "claim lost" in p1.stderr(), 5), p1.stderr()
    (h, _), = c.records().values()
    assert h[b"state"] == b"inflight" and h[b"owner"] != b"", h   # still p2's claim
    r = c.send(p1, k)
    assert is_processing(r), r
    th2.join(10)
    a2 = box.get("a2")
    assert a2 is not None and a2.status == 201 and not a2.replayed, a2
    (h, _), = c.records().values()
    assert h[b"state"] == b"done" and h[b"body"] == a2.body, h
    for p in (p1, p2):
        r = c.send(p, k)
        assert r.status == 201 and r.replayed and r.body == a2.body, r
    c.check(max_exec=2)
