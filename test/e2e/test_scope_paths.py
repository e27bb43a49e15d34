"""Route matching, scopes and fingerprinted headers against the real binary,
with exact request-targets and repeated headers (http.client sends them as
given). Cases found by a review of tenant isolation: a path variant that an
upstream serves as a protected path must not pass through unprotected, and
an ambiguous scope or credential must not get somebody's stored answer."""
import http.client

import pytest

from conftest import HOST, Resp
from test_proxy import assert_error, key


def send(port, method, path, headers, body=b"{}"):
    """One request with an exact request-target; bounded by 5 s."""
    c = http.client.HTTPConnection(HOST, port, timeout=5)
    try:
        c.putrequest(method, path, skip_host=False, skip_accept_encoding=True)
        for k, v in headers:
            c.putheader(k, v)
        c.putheader("Content-Length", str(len(body)))
        c.endheaders(body)
        r = c.getresponse()
        return Resp(r.status, r.getheaders(), r.read())
    finally:
        c.close()


# ------------------------------------------------------------ paths

@pytest.mark.parametrize("route", ["/v1/orders", "/v1/*"])
@pytest.mark.parametrize("path", ["//v1/orders", "/v1//orders", "/v1/./orders",
                                  "/v1/x/../orders", "/v1/%6Frders", "//v1/orders?x=1"])
def test_path_variants_match_the_route(proxy, upstream, route, path):
    # libevent read "//v1/orders" as host "v1" and path "/orders", so it
    # passed through unprotected, and an upstream that merges slashes (nginx,
    # Python's http.server) ran POST /v1/orders with no key. Paths are now
    # matched with slashes merged and dot segments resolved.
    p = proxy({"orders": {"path": route}})
    assert_error(send(p.port, "POST", path, []), 400, "IDEMPOTENCY_KEY_REQUIRED")
    assert upstream.count() == 0


def test_double_slash_path_is_not_another_route(proxy, upstream):
    # "//x/orders" was matched as "/orders" (its first segment taken as a host)
    p = proxy({"other": {"path": "/orders"}})
    r = send(p.port, "POST", "//x/orders", [])
    assert r.status == 201 and upstream.count() == 1, r


def test_a_key_on_a_path_variant_is_the_same_record(proxy, upstream):
    p = proxy()
    k = key()
    assert send(p.port, "POST", "/v1/orders", [("Idempotency-Key", k)]).status == 201
    # same route, scope and key; the fingerprint has the path as sent
    r = send(p.port, "POST", "/v1//orders", [("Idempotency-Key", k)])
    assert_error(r, 409, "IDEMPOTENCY_KEY_MISMATCH")
    assert upstream.count() == 1


@pytest.mark.parametrize("path", ["/v1/orders/", "/V1/orders", "/v1/orders;jsessionid=1"])
def test_exact_otherwise(proxy, upstream, path):
    # README: a trailing slash, case and ;parameters are not normalised
    p = proxy()
    r = send(p.port, "POST", path, [])
    assert r.status == 201 and upstream.count() == 1, r


# ------------------------------------------------------------ scope and credentials

def test_repeated_scope_header_is_refused(proxy, upstream):
    # Two X-Tenant-Id: idemproxy scoped by the first and forwarded both, so
    # tenant A's stored answer was replayed to a request an upstream may
    # read as tenant B's (or "A, B"). Refused now, as two Idempotency-Keys are.
    p = proxy({"orders": {"scope": "header:X-Tenant-Id"}})
    k = key()
    assert send(p.port, "POST", "/v1/orders", [("Idempotency-Key", k), ("X-Tenant-Id", "A")]).status == 201
    r = send(p.port, "POST", "/v1/orders",
             [("Idempotency-Key", k), ("X-Tenant-Id", "A"), ("x-tenant-id", "B")])
    assert_error(r, 400, "BAD_REQUEST")
    assert r.header("Idempotent-Replayed") is None
    assert upstream.count() == 1


def test_repeated_authorization_is_in_the_fingerprint(proxy, upstream):
    # only the first value was hashed, so adding a second credential replayed
    p = proxy()
    k = key()
    assert send(p.port, "POST", "/v1/orders", [("Idempotency-Key", k), ("Authorization", "a")]).status == 201
    r = send(p.port, "POST", "/v1/orders",
             [("Idempotency-Key", k), ("Authorization", "a"), ("Authorization", "b")])
    assert_error(r, 409, "IDEMPOTENCY_KEY_MISMATCH")
    # one value hashes as before: the retry as sent first still replays
    r = send(p.port, "POST", "/v1/orders", [("Idempotency-Key", k), ("Authorization", "a")])
    assert r.status == 201 and r.header("Idempotent-Replayed") == "true", r
    assert upstream.count() == 1
