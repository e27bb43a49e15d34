"""Scenario 10: tenant isolation. The checker's key identity includes the
scope (and the credentials), so an answer that belongs to another tenant's
or caller's execution is a violation even where the test's own asserts
would miss it."""
import json
import threading
import time

from conftest import ROUTE, new_key


def header(e, name):
    for k, v in e["headers"]:
        if k.lower() == name.lower():
            return v
    return None


def test_tenant_b_with_tenant_a_key_gets_its_own_execution(cluster):
    c = cluster
    route = {"orders": dict(ROUTE, scope="header:X-Tenant-Id")}
    p1, p2 = c.proxy(route), c.proxy(route)
    k = new_key("tenant")
    out = {}

    def go(t, p):
        out[t] = c.send(p, k, headers={"X-Tenant-Id": t, "X-Test-Sleep": "0.3"},
                        ident=(t, k))

    ts = [threading.Thread(target=go, args=(t, p)) for t, p in (("A", p1), ("B", p2))]
    for t in ts:
        t.start()
    for t in ts:
        t.join(10)
    a, b = out["A"], out["B"]
    assert a.status == 201 and not a.replayed, a
    assert b.status == 201 and not b.replayed, b
    assert a.body != b.body
    for t, first in (("A", a), ("B", b)):
        for p in (p1, p2):
            r = c.send(p, k, headers={"X-Tenant-Id": t}, ident=(t, k))
            assert r.status == 201 and r.replayed and r.body == first.body, r
    execs = c.executions(k)
    assert sorted(header(e, "X-Tenant-Id") for e in execs) == ["A", "B"]
    c.check(max_exec=1, ident=lambda e: (header(e, "X-Tenant-Id"), e["key"]))


def test_other_credentials_same_key_get_mismatch_never_the_answer(cluster):
    c = cluster
    p = c.proxy()                      # scope none, fingerprint_headers = Authorization
    k = new_key("auth")
    alice = {"Authorization": "Bearer alice"}
    mallory = {"Authorization": "Bearer mallory"}
    box = {}
    th = threading.Thread(target=lambda: box.setdefault("a", c.send(
        p, k, headers=dict(alice, **{"X-Test-Sleep": "0.4"}), ident=("alice", k))))
    th.start()
    time.sleep(0.15)
    during = c.send(p, k, headers=mallory, ident=("mallory", k))    # while alice's runs
    th.join(10)
    a = box["a"]
    assert a.status == 201, a
    after = c.send(p, k, headers=mallory, ident=("mallory", k))
    for r in (during, after):
        assert r.status == 409 and r.code() == "IDEMPOTENCY_KEY_MISMATCH", r
        assert a.body not in r.body and b'"n"' not in r.body, r
    again = c.send(p, k, headers=alice, ident=("alice", k))
    assert again.replayed and again.body == a.body, again
    assert len(c.executions(k)) == 1
    c.check(max_exec=1, ident=lambda e: (header(e, "Authorization").split()[-1], e["key"]))


def test_forged_scope_header_on_json_scoped_route_changes_nothing(cluster):
    c = cluster
    p = c.proxy({"jobs": dict(ROUTE, path="/jobs", scope="json:tenantId")})
    k = new_key("job")
    job_a = {"tenantId": "A", "type": "email"}
    job_b = {"tenantId": "B", "type": "email"}
    r1 = c.send(p, k, body=job_a, path="/jobs", headers={"X-Tenant-Id": "B"}, ident=("A", k))
    assert r1.status == 201 and not r1.replayed, r1
    # the header is not the scope: same body tenant, no/other header -> A's replay
    for h in ({}, {"X-Tenant-Id": "A"}, {"X-Tenant-Id": "C"}):
        r = c.send(p, k, body=job_a, path="/jobs", headers=h, ident=("A", k))
        assert r.status == 201 and r.replayed and r.body == r1.body, r
    # tenant B in the body, tenant A forged in the header: B's own execution
    r2 = c.send(p, k, body=job_b, path="/jobs", headers={"X-Tenant-Id": "A"}, ident=("B", k))
    assert r2.status == 201 and not r2.replayed and r2.body != r1.body, r2
    r3 = c.send(p, k, body=job_b, path="/jobs", ident=("B", k))
    assert r3.replayed and r3.body == r2.body, r3
    assert len(c.executions(k)) == 2
    c.check(max_exec=1, protected=("/jobs",),
            ident=lambda e: (json.loads(e["body"])["tenantId"], e["key"]))
