"""The shared checker must be able to fail: synthetic logs, answers and
records with one fault each (no processes)."""
import json

from faultcheck import Answer, check

LEASE = 2.0
T = 1000.0


def ex(n, key, t, status=201, tenant=None):
    h = [["Idempotency-Key", key]] + ([["X-Tenant-Id", tenant]] if tenant else [])
    return {"n": n, "key": key, "t": t, "status": status, "method": "POST",
            "path": "/v1/orders", "body": "{}", "headers": h}


def ans(key, n, t, replayed=False, status=201, ident=None):
    body = json.dumps({"n": n}).encode()
    return Answer(ident or key, t, t + 0.01, status,
                  [("X-Upstream", "yes"), ("Idempotent-Replayed", "true" if replayed else "false")],
                  body)


def rec(state, created_ms, pttl, body=b'{"n": 1}'):
    h = {b"v": b"1", b"state": state, b"owner": b"x", b"fp": b"f", b"created": str(int(created_ms)).encode()}
    if state == b"done":
        h.update({b"status": b"201", b"headers": b"", b"body": body})
    return h, pttl


def run(execs, answers=(), records=None, **kw):
    return check(execs, list(answers), records or {}, LEASE, now=T + 10, **kw).violations


def test_clean_run_has_no_violations():
    assert run([ex(1, "a", T)], [ans("a", 1, T), ans("a", 1, T + 1, True)],
               {"r": rec(b"done", (T) * 1000, 3600000)}) == []


def test_duplicate_inside_lease():
    v = run([ex(1, "a", T), ex(2, "a", T + 0.5)], allow_after_lease=True)
    assert len(v) == 1 and "inside the lease" in v[0]


def test_duplicate_after_lease_only_where_allowed():
    execs = [ex(1, "a", T), ex(2, "a", T + 2.5)]
    assert run(execs, allow_after_lease=True) == []
    assert "not allowed" in run(execs)[0]


def test_release_status_allows_immediate_retry():
    assert run([ex(1, "a", T, status=503), ex(2, "a", T + 0.1)]) == []


def test_redis_loss_allows_reexecution():
    assert run([ex(1, "a", T), ex(2, "a", T + 0.5)], losses=[T + 0.2]) == []


def test_max_exec():
    assert "at most 1" in run([ex(1, "a", T), ex(2, "a", T + 5)], allow_after_lease=True,
                              max_exec=1)[0]


def test_differing_answer():
    v = run([ex(1, "a", T)], [ans("a", 1, T), Answer("a", T + 1, T + 1, 201,
                                                     [("X-Upstream", "yes")], b'{"n": 1, "x": 2}')])
    assert any("differs" in x for x in v)


def test_answer_of_another_tenant():
    ident = lambda e: (e["headers"][1][1], e["key"])  # noqa: E731
    v = run([ex(1, "a", T, tenant="A")], [ans("a", 1, T, ident=("B", "a"))], ident=ident)
    assert any("another key/scope" in x for x in v)


def test_replay_of_an_overwritten_execution():
    execs = [ex(1, "a", T), ex(2, "a", T + 2.5)]
    v = run(execs, [ans("a", 2, T + 2.6), ans("a", 1, T + 3, replayed=True)],
            allow_after_lease=True)
    assert any("overwritten" in x for x in v)


def test_claim_left_past_its_lease():
    v = run([], records={"r": rec(b"inflight", (T + 10 - 5) * 1000, 1000)})
    assert any("past its lease" in x for x in v)


def test_record_without_expiry():
    v = run([ex(1, "a", T)], records={"r": rec(b"done", T * 1000, -1)})
    assert any("no expiry" in x for x in v)


def test_unkeyed_execution_on_protected_route():
    e = ex(1, "a", T)
    e["key"] = None
    assert "without an Idempotency-Key" in run([e])[0]
