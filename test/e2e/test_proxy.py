"""End-to-end tests for idemproxy against the request table of README.md
(rows 1-15), framing and signals. Everything runs on 127.0.0.1 with a real
redis-server and the test upstream in upstream.py."""
import email.utils
import json
import socket
import subprocess
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import BIN, HOST, raw_request, request, wait_until


def key():
    return str(uuid.uuid4())


def assert_error(r, status, code):
    assert r.status == status, r
    ct = r.header("Content-Type") or ""
    assert ct.split(";")[0].strip() == "application/json", r
    j = r.json()
    assert set(j) == {"error"}, j
    assert j["error"]["code"] == code, j
    assert isinstance(j["error"].get("message"), str) and j["error"]["message"], j


def in_thread(fn, *a, **kw):
    box = {}

    def run():
        try:
            box["r"] = fn(*a, **kw)
        except Exception as e:  # noqa
            box["e"] = e
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, box


ORDER = {"item": "book", "qty": 1}


# ------------------------------------------------------------ passthrough

def test_passthrough_unprotected_get(proxy, upstream):
    p = proxy()
    r = p.req("GET", "/catalog/items?a=1&b=two", headers={"X-Foo": "bar"})
    assert r.status == 201, r
    assert r.header("Idempotent-Replayed") is None
    assert r.header("X-Upstream") == "yes"
    log = upstream.log()
    assert len(log) == 1 and log[0]["path"] == "/catalog/items?a=1&b=two"
    assert log[0]["method"] == "GET"


def test_upstream_and_redis_named_by_host_name(proxy, upstream, redis):
    """`localhost` rather than an address, for both: the upstream's name is
    resolved at the start, Redis's off the loop when it connects; a first
    request, its replay and a pass-through work as with addresses."""
    p = proxy(proxy_opts={"upstream": "http://localhost:%d" % upstream.port},
              redis_opts={"url": "redis://localhost:%d/0" % redis.port})
    assert p.readyz()[0] == 200
    k = key()
    r1 = p.post(body=ORDER, key=k)
    r2 = p.post(body=ORDER, key=k)
    assert (r1.status, r1.header("Idempotent-Replayed")) == (201, "false"), r1
    assert (r2.status, r2.header("Idempotent-Replayed"), r2.body) == (201, "true", r1.body)
    assert p.req("GET", "/catalog/items").status == 201
    assert upstream.count(key=k) == 1


@pytest.mark.parametrize("protected", [False, True])
def test_hop_by_hop_headers_not_forwarded(proxy, upstream, protected):
    """Both ways: the fixed hop-by-hop headers and any header a Connection
    header names stay on their hop; the others are forwarded (and, on a
    protected route, the replay carries the same end-to-end headers)."""
    p = proxy()
    hdrs = {"Connection": "keep-alive, X-Drop-Me,x-drop-too", "X-Drop-Me": "1",
            "X-Drop-Too": "2", "Keep-Alive": "timeout=5", "TE": "trailers",
            "X-Keep": "3", "X-Test-Hop-Out": "X-Hop-Out"}
    k = key()
    if protected:
        hdrs["Idempotency-Key"] = k
        r = p.post(body=ORDER, headers=hdrs)
    else:
        r = p.req("POST", "/catalog/items", body=ORDER, headers=hdrs)
    assert r.status == 201, r
    sent = {name.lower(): v for name, v in upstream.log()[0]["headers"]}
    for gone in ("x-drop-me", "x-drop-too", "keep-alive", "te"):
        assert gone not in sent, (gone, sent)
    assert sent.get("x-keep") == "3"
    for answer in [r] + ([p.post(body=ORDER, headers=hdrs)] if protected else []):
        assert answer.header("X-Hop-Out") is None, answer
        assert answer.header("Keep-Alive") is None, answer
        assert answer.header("X-Upstream") == "yes", answer
    if protected:
        assert upstream.count() == 1


def test_scripts_flushed_from_redis_are_sent_again(proxy, upstream, redis):
    """Redis forgot the Lua scripts (SCRIPT FLUSH; also a restart, a
    failover): EVALSHA answers NOSCRIPT and idemproxy sends the script
    itself (EVAL), for the claim and for the store; nothing runs twice."""
    p = proxy()
    warm = p.post(body=ORDER, key=key())
    assert warm.status == 201
    assert redis.cmd("SCRIPT", "FLUSH") == "OK"
    k = key()
    first = p.post(body=ORDER, key=k)
    assert first.status == 201 and first.header("Idempotent-Replayed") == "false", first
    again = p.post(body=ORDER, key=k)
    assert again.status == 201 and again.header("Idempotent-Replayed") == "true", again
    assert again.body == first.body
    assert upstream.count() == 2


def test_passthrough_get_on_protected_path(proxy, upstream):
    # route methods = POST only: GET on the same path is not protected
    p = proxy()
    r = p.req("GET", "/v1/orders")
    assert r.status == 201 and r.header("Idempotent-Replayed") is None
    assert upstream.count() == 1


# ------------------------------------------------------------ rows 1-5

def test_row1_missing_key(proxy, upstream):
    p = proxy()
    r = p.post(body=ORDER)
    assert_error(r, 400, "IDEMPOTENCY_KEY_REQUIRED")
    assert upstream.count() == 0


def test_row2_key_not_required(proxy, upstream):
    p = proxy({"orders": {"require_key": "off"}})
    r = p.post(body=ORDER)
    assert r.status == 201, r
    r = p.post(body=ORDER)
    assert r.status == 201, r
    assert upstream.count() == 2


def test_row3_empty_key(proxy, upstream):
    p = proxy()
    r = p.post(body=ORDER, key="")
    assert_error(r, 400, "IDEMPOTENCY_KEY_INVALID")
    assert upstream.count() == 0


def test_row3_key_too_long(proxy, upstream):
    p = proxy()
    assert_error(p.post(body=ORDER, key="a" * 256), 400, "IDEMPOTENCY_KEY_INVALID")
    assert upstream.count() == 0
    r = p.post(body=ORDER, key="b" * 255)
    assert r.status == 201, r
    assert upstream.count() == 1


def test_row3_control_byte(proxy, upstream):
    p = proxy()
    body = b'{"a":1}'
    data = (b"POST /v1/orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Idempotency-Key: ab\x01cd\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
            % (len(body), body))
    out, _ = raw_request(p.port, data)
    assert out.startswith(b"HTTP/1.1 400"), out
    assert b"IDEMPOTENCY_KEY_INVALID" in out or b"BAD_REQUEST" in out, out
    assert upstream.count() == 0


def test_row3_non_ascii_key(proxy, upstream):
    p = proxy()
    body = b'{"a":1}'
    data = (b"POST /v1/orders HTTP/1.1\r\nHost: x\r\n"
            b"Idempotency-Key: caf\xc3\xa9\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
            % (len(body), body))
    out, _ = raw_request(p.port, data)
    assert out.startswith(b"HTTP/1.1 400"), out
    assert upstream.count() == 0


def test_row3_structured_field_string_key(proxy, upstream):
    p = proxy()
    r1 = p.post(body=ORDER, key='"abc"')
    assert r1.status == 201 and r1.header("Idempotent-Replayed") == "false", r1
    r2 = p.post(body=ORDER, key="abc")
    assert r2.status == 201 and r2.header("Idempotent-Replayed") == "true", r2
    assert r2.body == r1.body
    assert upstream.count() == 1


def test_row4_body_too_large(proxy, upstream):
    p = proxy()
    big = json.dumps({"blob": "x" * (70 * 1024)})
    try:
        r = p.post(body=big, key=key())
    except (BrokenPipeError, ConnectionResetError):
        pytest.fail("proxy closed the connection without a 413 answer")
    assert_error(r, 413, "PAYLOAD_TOO_LARGE")
    assert upstream.count() == 0


def test_row4_no_claim_after_413(proxy, upstream):
    p = proxy()
    k = key()
    big = json.dumps({"blob": "x" * (70 * 1024)})
    try:
        p.post(body=big, key=k)
    except OSError:
        pass
    r = p.post(body=ORDER, key=k)
    assert r.status == 201 and r.header("Idempotent-Replayed") == "false", r


def test_row5_scope_header_missing(proxy, upstream):
    p = proxy({"orders": {"scope": "header:X-Tenant-Id"}})
    assert_error(p.post(body=ORDER, key=key()), 400, "SCOPE_REQUIRED")
    assert upstream.count() == 0


def test_row5_scope_json_missing(proxy, upstream):
    p = proxy({"jobs": {"path": "/jobs", "scope": "json:tenantId"}})
    assert_error(p.post("/jobs", body={"type": "email"}, key=key()), 400, "SCOPE_REQUIRED")
    assert upstream.count() == 0


def test_invalid_json_body(proxy, upstream):
    p = proxy()
    assert_error(p.post(body="this is {not json", key=key()), 400, "INVALID_JSON_BODY")
    assert upstream.count() == 0


# ------------------------------------------------------------ rows 6-7

def test_row6_first_then_row7_replay(proxy, upstream):
    p = proxy()
    k = key()
    r1 = p.post(body=ORDER, key=k)
    assert r1.status == 201, r1
    assert r1.header("Idempotent-Replayed") == "false"
    assert r1.header("Location") == "/x/%d" % r1.json()["n"]
    assert r1.header("X-Upstream") == "yes"
    assert r1.json()["path"] == "/v1/orders"
    log = upstream.log()
    assert len(log) == 1 and log[0]["key"] == k
    r2 = p.post(body=ORDER, key=k)
    assert r2.status == 201, r2
    assert r2.header("Idempotent-Replayed") == "true"
    assert r2.body == r1.body
    assert r2.header("Location") == r1.header("Location")
    assert r2.header("X-Upstream") == "yes"
    assert (r2.header("Content-Type") or "").startswith("application/json")
    r3 = p.post(body=ORDER, key=k)
    assert r3.status == 201 and r3.body == r1.body
    assert upstream.count() == 1
    # the record keeps no Date: a replay, like an error, carries one Date of
    # the time it is sent
    time.sleep(1.1)
    r4 = p.post(body=ORDER, key=k)
    err = p.post(body={"item": "pen"}, key=k)
    assert err.status == 409, err
    for r in (r4, err):
        dates = [v for n, v in r.headers if n.lower() == "date"]
        assert len(dates) == 1, r
        sent = email.utils.parsedate_to_datetime(dates[0]).timestamp()
        assert abs(sent - time.time()) < 3, dates
        assert dates[0].endswith(" GMT"), dates
    assert email.utils.parsedate_to_datetime(r4.header("Date")) > \
        email.utils.parsedate_to_datetime(r2.header("Date"))


def test_row7_replay_has_no_set_cookie_by_default(proxy, upstream):
    p = proxy()
    k = key()
    r1 = p.post(body=ORDER, key=k)
    assert r1.status == 201
    r2 = p.post(body=ORDER, key=k)
    assert r2.header("Idempotent-Replayed") == "true"
    assert r2.header("Set-Cookie") is None, r2


def test_row7_replay_status_200(proxy, upstream):
    p = proxy({"orders": {"replay_status": "200"}})
    k = key()
    r1 = p.post(body=ORDER, key=k)
    assert r1.status == 201
    r2 = p.post(body=ORDER, key=k)
    assert r2.status == 200, r2
    assert r2.body == r1.body and r2.header("Idempotent-Replayed") == "true"
    assert upstream.count() == 1


def test_jobs_example_tenant_in_json(proxy, upstream):
    p = proxy({"jobs": {"path": "/jobs", "scope": "json:tenantId", "replay_status": "200"}})
    k = key()
    email = {"tenantId": "tenant_123", "type": "email",
             "payload": {"to": "user@example.com", "subject": "Hello", "body": "Welcome!"}}
    r1 = p.post("/jobs", body=email, key=k)
    assert r1.status == 201
    r2 = p.post("/jobs", body=email, key=k)
    assert r2.status == 200 and r2.body == r1.body
    other = dict(email, tenantId="tenant_456")
    r3 = p.post("/jobs", body=other, key=k)
    assert r3.status == 201 and r3.header("Idempotent-Replayed") == "false", r3
    sms = dict(email, type="sms")
    assert_error(p.post("/jobs", body=sms, key=k), 409, "IDEMPOTENCY_KEY_MISMATCH")
    assert upstream.count() == 2


# ------------------------------------------------------------ row 8

def test_row8_mismatch_409(proxy, upstream):
    p = proxy()
    k = key()
    assert p.post(body=ORDER, key=k).status == 201
    assert_error(p.post(body={"item": "pen", "qty": 1}, key=k), 409, "IDEMPOTENCY_KEY_MISMATCH")
    assert upstream.count() == 1


def test_row8_mismatch_422(proxy, upstream):
    p = proxy({"orders": {"mismatch_status": "422"}})
    k = key()
    assert p.post(body=ORDER, key=k).status == 201
    assert_error(p.post(body={"item": "pen"}, key=k), 422, "IDEMPOTENCY_KEY_MISMATCH")
    assert upstream.count() == 1


def test_row8_json_fingerprint_ignores_order_and_space(proxy, upstream):
    p = proxy()
    k = key()
    assert p.post(body='{"a":1,"b":{"c":2,"d":[1,2]}}', key=k).status == 201
    r = p.post(body='  {\n "b" : { "d" : [1, 2], "c":2 },\t"a": 1 }\n', key=k)
    assert r.status == 201 and r.header("Idempotent-Replayed") == "true", r
    assert upstream.count() == 1


def test_row8_raw_fingerprint_is_byte_exact(proxy, upstream):
    p = proxy({"orders": {"fingerprint_body": "raw"}})
    k = key()
    assert p.post(body='{"a":1,"b":2}', key=k).status == 201
    assert_error(p.post(body='{"b":2,"a":1}', key=k), 409, "IDEMPOTENCY_KEY_MISMATCH")
    assert upstream.count() == 1


def test_row8_other_authorization_is_mismatch(proxy, upstream):
    p = proxy()
    k = key()
    r1 = p.post(body=ORDER, key=k, headers={"Authorization": "Bearer alice"})
    assert r1.status == 201
    r2 = p.post(body=ORDER, key=k, headers={"Authorization": "Bearer mallory"})
    assert_error(r2, 409, "IDEMPOTENCY_KEY_MISMATCH")
    assert r1.body not in r2.body
    r3 = p.post(body=ORDER, key=k, headers={"Authorization": "Bearer alice"})
    assert r3.header("Idempotent-Replayed") == "true"
    assert upstream.count() == 1


def test_row8_other_path_query_is_mismatch_or_separate(proxy, upstream):
    p = proxy({"orders": {"path": "/v1/orders/*"}})
    k = key()
    assert p.post("/v1/orders/a?x=1", body=ORDER, key=k).status == 201
    r = p.post("/v1/orders/a?x=2", body=ORDER, key=k)
    assert_error(r, 409, "IDEMPOTENCY_KEY_MISMATCH")
    assert upstream.count() == 1


def test_row8_tenants_are_separate(proxy, upstream):
    p = proxy({"orders": {"scope": "header:X-Tenant-Id"}})
    k = key()
    ra = p.post(body=ORDER, key=k, headers={"X-Tenant-Id": "A"})
    rb = p.post(body=ORDER, key=k, headers={"X-Tenant-Id": "B"})
    assert ra.status == 201 and rb.status == 201
    assert rb.header("Idempotent-Replayed") == "false"
    assert ra.body != rb.body
    ra2 = p.post(body=ORDER, key=k, headers={"X-Tenant-Id": "A"})
    assert ra2.body == ra.body and ra2.header("Idempotent-Replayed") == "true"
    assert upstream.count() == 2


def test_routes_are_separate_key_spaces(proxy, upstream):
    p = proxy({"orders": {}, "payments": {"path": "/v1/payments"}})
    k = key()
    assert p.post("/v1/orders", body=ORDER, key=k).status == 201
    r = p.post("/v1/payments", body=ORDER, key=k)
    assert r.status == 201 and r.header("Idempotent-Replayed") == "false"
    assert upstream.count() == 2


# ------------------------------------------------------------ row 9

def test_row9_in_flight_reject(proxy, upstream):
    p = proxy()
    k = key()
    t, box = in_thread(p.post, body=ORDER, key=k, headers={"X-Test-Sleep": "1.5"})
    assert wait_until(lambda: upstream.count() == 1, 5)
    r = p.post(body=ORDER, key=k)
    assert_error(r, 409, "REQUEST_PROCESSING")
    assert r.header("Retry-After"), r
    # a mismatch while in flight is still a mismatch
    assert_error(p.post(body={"other": 1}, key=k), 409, "IDEMPOTENCY_KEY_MISMATCH")
    t.join(10)
    assert box.get("r") is not None and box["r"].status == 201, box
    r3 = p.post(body=ORDER, key=k)
    assert r3.status == 201 and r3.header("Idempotent-Replayed") == "true"
    assert r3.body == box["r"].body
    assert upstream.count() == 1


def test_row9_retry_after_from_the_routes_upstream_time(proxy, upstream):
    """Retry-After on REQUEST_PROCESSING is the route's usual upstream time
    less what the first request already ran, at least 1 s, at most the
    lease left: not the whole lease left (30 s here)."""
    p = proxy({"orders": {"lease": "30s"}},
              proxy_opts={"workers": "1", "upstream_timeout": "10s"})
    slow = {"X-Test-Sleep": "2.5"}

    def duplicate_while_running(k):
        t0 = time.monotonic()
        t, box = in_thread(p.post, body=ORDER, key=k, headers=slow)
        assert wait_until(lambda: upstream.count(key=k) == 1, 5)
        r = p.post(body=ORDER, key=k)
        ran = time.monotonic() - t0        # at least what the first one ran
        t.join(10)
        assert box["r"].status == 201, box
        assert_error(r, 409, "REQUEST_PROCESSING")
        return int(r.header("Retry-After")), ran

    # no upstream answer of this route seen yet: 1 s
    hint, _ = duplicate_while_running(key())
    assert hint == 1
    # it answered in about 2.5 s: a duplicate is told what is left of that
    hint, ran = duplicate_while_running(key())
    assert 1 <= hint <= 3, hint
    assert hint >= 2.5 - ran, (hint, ran)
    assert upstream.count() == 2


def test_row9_in_flight_wait(proxy, upstream):
    p = proxy({"orders": {"in_flight": "wait", "wait_timeout": "5s"}})
    k = key()
    t, box = in_thread(p.post, body=ORDER, key=k, headers={"X-Test-Sleep": "1"})
    assert wait_until(lambda: upstream.count() == 1, 5)
    r = p.post(body=ORDER, key=k)
    t.join(10)
    first = box.get("r")
    assert first is not None and first.status == 201, box
    assert r.status == 201, r
    assert r.header("Idempotent-Replayed") == "true"
    assert r.body == first.body
    assert upstream.count() == 1


# ------------------------------------------------------------ row 10 + admin

def test_row10_store_down_reject(proxy, upstream, redis):
    p = proxy()
    redis.stop()
    r = p.post(body=ORDER, key=key())
    assert_error(r, 503, "STORE_UNAVAILABLE")
    assert r.header("Retry-After"), r
    assert upstream.count() == 0
    # unprotected traffic is not affected
    assert p.req("GET", "/status").status == 201


def test_row10_store_down_pass(proxy, upstream, redis):
    p = proxy({"orders": {"on_store_error": "pass"}})
    redis.stop()
    r = p.post(body=ORDER, key=key())
    assert r.status == 201, r
    assert upstream.count() == 1


@pytest.mark.parametrize("tamper,detail", [
    (lambda rd, k: (rd.cmd("DEL", k), rd.cmd("SET", k, "idem/3 done ...")),
     "a string record this version cannot read"),
    (lambda rd, k: (rd.cmd("DEL", k), rd.cmd("RPUSH", k, "x")),
     "the key is neither a hash nor a string"),
    (lambda rd, k: rd.cmd("HSET", k, "v", "2"), "layout version 2"),
    (lambda rd, k: rd.cmd("HSET", k, "state", "stored-later"), "state stored-later"),
    (lambda rd, k: rd.cmd("HDEL", k, "body"), "a done record without its answer"),
], ids=["string", "list", "hash-version-2", "unknown-state", "incomplete"])
def test_unreadable_record_never_forwarded_around(proxy, upstream, redis, tamper, detail):
    # A record this version cannot read (a newer layout during a rolling
    # upgrade, another type under the same name, a state it does not know)
    # may belong to a request that ran: 503, never forwarded, not even with
    # on_store_error = pass, and the record is left as it is.
    p = proxy({"orders": {"on_store_error": "pass"}})
    k = key()
    assert p.post(body=ORDER, key=k).status == 201
    (rkey,) = redis.cmd("KEYS", "idem:*")
    tamper(redis, rkey)
    before = redis.cmd("DUMP", rkey)
    r = p.post(body=ORDER, key=k)
    assert_error(r, 503, "STORE_UNAVAILABLE")
    assert r.header("Retry-After"), r
    assert upstream.count() == 1
    assert redis.cmd("DUMP", rkey) == before
    line = [ln for ln in p.stderr().splitlines() if "record unreadable" in ln]
    assert line and json.loads(line[-1])["detail"] == detail, p.stderr()
    assert k not in p.stderr()
    # the admin API says what it found
    a = _records(p, route="orders", key=k)
    if "string" in detail:
        assert a.status == 503 and a.json()["error"]["message"] == detail, a
    else:
        assert a.status == 200 and a.json()["version"] == (2 if detail == "layout version 2" else 1), a


def test_row10_store_comes_back(proxy, upstream, redis):
    p = proxy()
    redis.stop()
    assert p.post(body=ORDER, key=key()).status == 503
    redis.start()
    k = key()
    r = wait_until(lambda: (lambda x: x if x.status == 201 else None)(p.post(body=ORDER, key=k)), 10, 0.2)
    assert r and r.status == 201


def _metric(p, name):
    for line in p.admin("/metrics").body.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def _until_answered(p, k):
    """Retry (as a client would) until Redis is back and answers."""
    box = {}

    def ok():
        r = p.post(body=ORDER, key=k)
        box["r"] = r
        return r.status != 503
    assert wait_until(ok, 10, 0.2), box.get("r")
    return box["r"]


def test_redis_restart_with_aof_keeps_records(proxy, upstream, redis):
    redis.stop()
    redis.aof = True
    redis.start()
    p = proxy()
    k = key()
    first = p.post(body=ORDER, key=k)
    assert first.status == 201
    redis.stop()                      # SIGKILL; appendfsync always kept it
    redis.start()
    again = _until_answered(p, k)
    assert again.status == 201 and again.header("Idempotent-Replayed") == "true", again
    assert again.body == first.body
    assert upstream.count(key=k) == 1
    assert wait_until(lambda: _metric(p, "idemproxy_redis_restarts_total") == 1, 5)
    assert "AOF is on" in p.stderr()


def test_redis_restart_without_persistence_is_detected(proxy, upstream, redis):
    p = proxy()
    k = key()
    assert p.post(body=ORDER, key=k).status == 201
    redis.stop()
    redis.start()                     # empty: the record is gone
    again = _until_answered(p, k)
    # documented limit: without persistence the retry executes again
    assert again.header("Idempotent-Replayed") == "false", again
    assert upstream.count(key=k) == 2
    assert wait_until(lambda: _metric(p, "idemproxy_redis_restarts_total") == 1, 5)
    assert "without AOF" in p.stderr()


def test_admin_endpoints(proxy, upstream, redis):
    p = proxy()
    assert p.admin("/healthz").status == 200
    assert p.admin("/readyz").status == 200
    assert p.post(body=ORDER, key=key()).status == 201
    m = p.admin("/metrics")
    assert m.status == 200
    assert b'idemproxy_requests_total{route="orders",outcome="first"}' in m.body, m.body[:2000]
    redis.stop()
    assert wait_until(lambda: p.admin("/readyz").status == 503, 5)
    assert p.admin("/healthz").status == 200
    redis.start()
    assert wait_until(lambda: p.admin("/readyz").status == 200, 10, 0.2)


# ------------------------------------------------------------ rows 11-13

def test_row11_upstream_refused(proxy, upstream):
    p = proxy()
    k = key()
    upstream.stop()
    assert_error(p.post(body=ORDER, key=k), 502, "UPSTREAM_UNAVAILABLE")
    upstream.start()
    r = p.post(body=ORDER, key=k)
    assert r.status == 201 and r.header("Idempotent-Replayed") == "false", r
    assert upstream.count() == 1


@pytest.mark.parametrize("status", [500, 503, 408, 425, 429])
def test_row12_released_statuses(proxy, upstream, status):
    p = proxy()
    k = key()
    r = p.post(body=ORDER, key=k, headers={"X-Test-Status": str(status)})
    assert r.status == status and r.header("X-Upstream") == "yes", r
    r = p.post(body=ORDER, key=k, headers={"X-Test-Status": str(status)})
    assert r.status == status, r
    assert upstream.count() == 2
    r = p.post(body=ORDER, key=k)
    assert r.status == 201 and r.header("Idempotent-Replayed") == "false"
    assert upstream.count() == 3


def test_row12_release_on_configurable(proxy, upstream):
    p = proxy({"orders": {"release_on": "5xx"}})
    k = key()
    assert p.post(body=ORDER, key=k, headers={"X-Test-Status": "429"}).status == 429
    r = p.post(body=ORDER, key=k)
    assert r.status == 429 and r.header("Idempotent-Replayed") == "true", r
    assert upstream.count() == 1


@pytest.mark.parametrize("status", [200, 400, 404, 422])
def test_row13_other_statuses_stored(proxy, upstream, status):
    p = proxy()
    k = key()
    r1 = p.post(body=ORDER, key=k, headers={"X-Test-Status": str(status)})
    assert r1.status == status
    r2 = p.post(body=ORDER, key=k)
    assert r2.status == status and r2.body == r1.body
    assert r2.header("Idempotent-Replayed") == "true"
    assert upstream.count() == 1


def test_row13_ttl_expiry(proxy, upstream):
    p = proxy({"orders": {"ttl": "1s"}})
    k = key()
    assert p.post(body=ORDER, key=k).status == 201
    time.sleep(1.6)
    r = p.post(body=ORDER, key=k)
    assert r.status == 201 and r.header("Idempotent-Replayed") == "false", r
    assert upstream.count() == 2


# ------------------------------------------------------------ row 14

def test_row14_timeout_keeps_claim_until_lease(proxy, upstream):
    p = proxy({"orders": {"lease": "3s"}}, proxy_opts={"upstream_timeout": "1s"})
    k = key()
    t0 = time.monotonic()
    r = p.post(body=ORDER, key=k, headers={"X-Test-Sleep": "2"})
    assert_error(r, 504, "UPSTREAM_TIMEOUT")
    assert time.monotonic() - t0 < 2.5
    assert_error(p.post(body=ORDER, key=k), 409, "REQUEST_PROCESSING")
    assert upstream.count() == 1
    time.sleep(max(0, 3.4 - (time.monotonic() - t0)))
    r = p.post(body=ORDER, key=k)
    assert r.status == 201 and r.header("Idempotent-Replayed") == "false", r
    assert upstream.count() == 2


def test_row14_reset_keeps_claim(proxy, upstream):
    p = proxy()
    k = key()
    r = p.post(body=ORDER, key=k, headers={"X-Test-Reset": "1"})
    assert_error(r, 502, "UPSTREAM_ERROR")
    assert_error(p.post(body=ORDER, key=k), 409, "REQUEST_PROCESSING")
    assert upstream.count() == 1


# ------------------------------------------------------------ row 15

def test_row15_answer_too_large_to_store(proxy, upstream):
    p = proxy({"orders": {"max_store": "1k"}})
    k = key()
    r = p.post(body=ORDER, key=k, headers={"X-Test-Body-Size": "5000"})
    assert r.status == 201 and len(r.body) == 5000, r
    r2 = p.post(body=ORDER, key=k)
    assert_error(r2, 409, "RESPONSE_NOT_STORED")
    assert upstream.count() == 1


# ------------------------------------------------------------ disconnect

def test_client_disconnect_does_not_cancel(proxy, upstream):
    p = proxy()
    k = key()
    body = json.dumps(ORDER).encode()
    s = socket.create_connection((HOST, p.port), timeout=5)
    s.sendall(b"POST /v1/orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Idempotency-Key: %s\r\nX-Test-Sleep: 1\r\nContent-Length: %d\r\n\r\n%s"
              % (k.encode(), len(body), body))
    assert wait_until(lambda: upstream.count() == 1, 5)
    s.close()

    def done():
        r = p.post(body=ORDER, key=k)
        return r if r.code() != "REQUEST_PROCESSING" else None
    r = wait_until(done, 8, 0.2)
    assert r and r.status == 201, r
    assert r.header("Idempotent-Replayed") == "true"
    assert upstream.count() == 1


# ------------------------------------------------------------ concurrency

def _storm(p, k, n=200):
    def one(_):
        try:
            return p.post(body=ORDER, key=k, headers={"X-Test-Sleep": "0.5"}, timeout=20)
        except Exception as e:  # noqa
            return e
    with ThreadPoolExecutor(n) as ex:
        return list(ex.map(one, range(n)))


def test_replays_not_held_behind_slow_upstream_calls(proxy, upstream):
    """One worker, one Redis connection: while 20 first requests wait on a
    slow upstream (their claims and completions share that connection),
    replays of a stored key are answered from Redis at once, before any of
    the slow ones is done."""
    p = proxy(proxy_opts={"workers": "1", "upstream_timeout": "4s"})
    stored = key()
    r = p.post(body=ORDER, key=stored)
    assert r.status == 201 and r.header("Idempotent-Replayed") == "false"
    slow = [in_thread(p.post, body=ORDER, key=key(), headers={"X-Test-Sleep": "3"},
                      timeout=20) for _ in range(20)]
    # all 20 at the upstream (it logs on arrival, then sleeps)
    assert wait_until(lambda: upstream.count() >= 21, 8), upstream.count()
    replays = []
    for _ in range(30):
        rr = p.post(body=ORDER, key=stored, timeout=10)
        replays.append(rr)
    still_running = sum(1 for t, _ in slow if t.is_alive())
    for t, _ in slow:
        t.join(20)
    assert all(rr.status == 201 and rr.header("Idempotent-Replayed") == "true"
               and rr.body == r.body for rr in replays), [rr.status for rr in replays]
    # every replay came back while all 20 slow requests were still at the
    # upstream: none waited for a slow call to finish
    assert still_running == 20, still_running
    assert all(box.get("r") is not None and box["r"].status == 201 for _, box in slow), \
        [box for _, box in slow]
    assert upstream.count() == 21


def test_concurrent_same_key_reject(proxy, upstream):
    p = proxy()
    k = key()
    res = _storm(p, k)
    errs = [r for r in res if isinstance(r, Exception)]
    assert not errs, errs[:3]
    firsts = [r for r in res if r.status == 201 and r.header("Idempotent-Replayed") == "false"]
    assert len(firsts) == 1, [r.status for r in res]
    for r in res:
        if r.status == 201:
            assert r.body == firsts[0].body
        else:
            assert r.status == 409 and r.code() == "REQUEST_PROCESSING", r
    assert upstream.count() == 1


def test_concurrent_same_key_wait(proxy, upstream):
    p = proxy({"orders": {"in_flight": "wait", "wait_timeout": "10s"}})
    k = key()
    res = _storm(p, k)
    errs = [r for r in res if isinstance(r, Exception)]
    assert not errs, errs[:3]
    assert all(r.status == 201 for r in res), sorted(set(r.status for r in res))
    assert len(set(r.body for r in res)) == 1
    assert sum(r.header("Idempotent-Replayed") == "false" for r in res) == 1
    assert upstream.count() == 1


# ------------------------------------------------------------ smuggling

def _framing(p, upstream, head):
    out, closed = raw_request(p.port, head)
    assert out.startswith(b"HTTP/1.1 400"), out
    assert closed, "connection not closed after a framing error"
    assert upstream.count() == 0


@pytest.mark.parametrize("path", [b"/v1/orders", b"/other"])
def test_smuggling_cl_and_te(proxy, upstream, path):
    p = proxy()
    _framing(p, upstream,
             b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nIdempotency-Key: k1\r\n"
             b"Content-Type: application/json\r\nContent-Length: 2\r\n"
             b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n")


@pytest.mark.parametrize("path", [b"/v1/orders", b"/other"])
def test_smuggling_two_content_lengths(proxy, upstream, path):
    p = proxy()
    _framing(p, upstream,
             b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nIdempotency-Key: k2\r\n"
             b"Content-Type: application/json\r\nContent-Length: 2\r\n"
             b"Content-Length: 7\r\n\r\n{}{\"a\":1}")


def test_two_idempotency_keys(proxy, upstream):
    p = proxy()
    _framing(p, upstream,
             b"POST /v1/orders HTTP/1.1\r\nHost: x\r\nIdempotency-Key: k3\r\n"
             b"Idempotency-Key: k4\r\nContent-Type: application/json\r\n"
             b"Content-Length: 2\r\n\r\n{}")


def test_keepalive_two_requests(proxy, upstream):
    p = proxy()
    k1, k2 = key(), key()
    body = b'{"a":1}'
    one = (b"POST /v1/orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           b"Idempotency-Key: %s\r\nContent-Length: %d\r\n\r\n%s")
    close = one.replace(b"Host: x\r\n", b"Host: x\r\nConnection: close\r\n")
    data = one % (k1.encode(), len(body), body) + close % (k2.encode(), len(body), body)
    out, _ = raw_request(p.port, data, timeout=3)
    assert out.count(b"HTTP/1.1 201") == 2, out
    assert upstream.count() == 2


# ------------------------------------------------------------ crash/restart

def test_kill9_then_restart_keeps_claim(proxy, upstream):
    p1 = proxy({"orders": {"lease": "5s"}})
    k = key()
    t, box = in_thread(p1.post, body=ORDER, key=k, headers={"X-Test-Sleep": "1.5"})
    assert wait_until(lambda: upstream.count() == 1, 5)
    p1.kill9()
    t.join(5)
    p2 = proxy({"orders": {"lease": "5s"}})
    assert_error(p2.post(body=ORDER, key=k), 409, "REQUEST_PROCESSING")
    time.sleep(1.0)
    assert_error(p2.post(body=ORDER, key=k), 409, "REQUEST_PROCESSING")
    assert upstream.count() == 1


def test_completed_record_replayed_by_new_process(proxy, upstream):
    p1 = proxy()
    k = key()
    r1 = p1.post(body=ORDER, key=k)
    assert r1.status == 201
    assert p1.terminate() == 0
    p2 = proxy()
    r2 = p2.post(body=ORDER, key=k)
    assert r2.status == 201 and r2.header("Idempotent-Replayed") == "true", r2
    assert r2.body == r1.body and r2.header("Location") == r1.header("Location")
    assert upstream.count() == 1


def test_record_readable_in_redis(proxy, upstream, redis):
    p = proxy()
    assert p.post(body=ORDER, key=key()).status == 201
    keys = redis.cmd("KEYS", "idem:*")
    assert len(keys) == 1, keys
    assert b"{" in keys[0] and b"}" in keys[0], keys  # cluster hash tag


# ------------------------------------------------------------ signals

def test_sighup_bad_config_kept_good_applied(proxy, upstream):
    p = proxy()
    assert p.post("/jobs", body={"a": 1}).status == 201  # not protected yet
    with open(p.conf, "a") as f:
        f.write("\n[route broken]\npath = /broken\nin_flight = sometimes\n")
    p.hup()
    time.sleep(0.7)
    assert p.proc.poll() is None, p.stderr()
    assert_error(p.post(body=ORDER), 400, "IDEMPOTENCY_KEY_REQUIRED")
    assert p.post("/broken", body={"a": 1}).status == 201
    p.write_config({"orders": {}, "jobs": {"path": "/jobs"}})
    p.hup()
    r = wait_until(lambda: (lambda x: x if x.status == 400 else None)(p.post("/jobs", body={"a": 1})), 5, 0.1)
    assert r, "new route not applied after SIGHUP"
    assert_error(r, 400, "IDEMPOTENCY_KEY_REQUIRED")
    assert p.proc.poll() is None


def test_sigterm_finishes_in_flight(proxy, upstream):
    p = proxy()
    k = key()
    t, box = in_thread(p.post, body=ORDER, key=k, headers={"X-Test-Sleep": "1.5"})
    assert wait_until(lambda: upstream.count() == 1, 5)
    rc = p.terminate(timeout=10)
    t.join(5)
    assert box.get("r") is not None, box
    assert box["r"].status == 201, box["r"]
    assert rc == 0, p.stderr()


# ------------------------------------------------------------ command line

def test_config_check(tmp_path):
    good = tmp_path / "good.ini"
    good.write_text("[proxy]\nlisten = 127.0.0.1:1\nupstream = http://127.0.0.1:2\n"
                    "upstream_timeout = 2s\n[redis]\nurl = redis://127.0.0.1:3/0\n"
                    "[route orders]\npath = /v1/orders\nlease = 5s\n")
    r = subprocess.run([BIN, "-t", "-c", str(good)], capture_output=True, timeout=10)
    assert r.returncode == 0, r
    bad = tmp_path / "bad.ini"
    bad.write_text(good.read_text().replace("lease = 5s", "lease = 1s"))
    r = subprocess.run([BIN, "-t", "-c", str(bad)], capture_output=True, timeout=10)
    assert r.returncode == 1, r
    assert b"bad.ini:" in r.stdout + r.stderr, r
    r = subprocess.run([BIN, "-V"], capture_output=True, timeout=10)
    assert r.returncode == 0 and (r.stdout + r.stderr).strip(), r


# ------------------------------------------------------------ workers

def test_workers_share_the_port_and_sum_metrics(proxy, upstream):
    p = proxy(proxy_opts={"workers": "3"})
    assert '"workers":3' in p.stderr()
    keys = [key() for _ in range(30)]
    # each request on its own connection, so the kernel spreads them
    with ThreadPoolExecutor(10) as ex:
        res = list(ex.map(lambda k: p.post(body=ORDER, key=k), keys))
    assert all(r.status == 201 for r in res), [r.status for r in res]
    with ThreadPoolExecutor(10) as ex:
        again = list(ex.map(lambda k: p.post(body=ORDER, key=k), keys))
    assert all(r.header("Idempotent-Replayed") == "true" for r in again)
    assert upstream.count() == 30
    m = p.admin("/metrics").body.decode()
    assert 'idemproxy_requests_total{route="orders",outcome="first"} 30' in m, m[:1500]
    assert 'idemproxy_requests_total{route="orders",outcome="replay"} 30' in m
    assert "idemproxy_requests_in_flight 0" in m
    assert "idemproxy_oldest_request_age_seconds 0.000" in m


def test_oldest_request_age_while_one_is_slow(proxy, upstream):
    p = proxy()
    t, box = in_thread(p.post, body=ORDER, key=key(), headers={"X-Test-Sleep": "1.5"})
    assert wait_until(lambda: _metric(p, "idemproxy_requests_in_flight") == 1, 5)
    time.sleep(0.5)
    age = _metric(p, "idemproxy_oldest_request_age_seconds")
    assert 0.4 <= age < 5, age
    t.join(10)
    assert box["r"].status == 201


def test_second_process_on_the_same_port_is_refused(proxy, upstream):
    """SO_REUSEPORT lets workers share the port; it must not let a second
    idemproxy silently take half of the connections."""
    p = proxy()
    q = proxy(start=False)
    q.write_config(None)
    text = open(q.conf).read().replace("listen = %s:%d" % (HOST, q.port),
                                       "listen = %s:%d" % (HOST, p.port), 1)
    with open(q.conf, "w") as f:
        f.write(text)
    r = subprocess.run([BIN, "-c", q.conf], capture_output=True, timeout=10)
    assert r.returncode == 1, r
    assert b"cannot listen on 127.0.0.1:%d" % p.port in r.stderr, r.stderr
    assert b"in use" in r.stderr, r.stderr
    assert p.post(body=ORDER, key=key()).status == 201


def test_workers_bound_checked(tmp_path):
    bad = tmp_path / "w.ini"
    bad.write_text("[proxy]\nworkers = 1000\n")
    r = subprocess.run([BIN, "-t", "-c", str(bad)], capture_output=True, timeout=10)
    assert r.returncode == 1, r
    assert b"w.ini:2:" in r.stdout + r.stderr, r


# ------------------------------------------------------------ observe mode

def _observed(p, would, route="orders"):
    return _metric(p, 'idemproxy_observed_total{route="%s",would="%s"}' % (route, would))


def test_observe_mode_forwards_everything_and_counts(proxy, upstream):
    """mode = observe: the rollout step before enforcement. Nothing is
    refused or replayed; what enforcement would have done is counted."""
    p = proxy({"orders": {"mode": "observe"}})
    k = key()
    first = p.post(body=ORDER, key=k)
    assert first.status == 201 and first.header("Idempotent-Replayed") is None, first
    again = p.post(body=ORDER, key=k)             # would be a replay
    assert again.status == 201 and again.header("Idempotent-Replayed") is None
    other = p.post(body={"item": "pen"}, key=k)   # would be a mismatch
    assert other.status == 201
    nokey = p.post(body=ORDER)                    # would be 400
    assert nokey.status == 201
    bad = p.post(body=ORDER, key="a" * 300)       # would be 400 (key too long)
    assert bad.status == 201
    assert upstream.count() == 5                  # everything executed
    assert _observed(p, "first") == 1
    assert _observed(p, "replay") == 1
    assert _observed(p, "mismatch") == 1
    assert _observed(p, "key_missing") == 1
    assert _observed(p, "key_invalid") == 1
    assert '"would":"replay"' in p.stderr()
    # the first answer was stored, so switching to enforce replays it
    p.write_config({"orders": {"mode": "enforce"}})
    p.hup()
    assert wait_until(lambda: "config reloaded" in p.stderr(), 5)
    time.sleep(0.3)                               # workers take it from their mailbox
    r = p.post(body=ORDER, key=k)
    assert r.header("Idempotent-Replayed") == "true" and r.body == first.body, r
    assert upstream.count() == 5


def test_observe_mode_in_flight_duplicate_is_forwarded(proxy, upstream):
    p = proxy({"orders": {"mode": "observe"}})
    k = key()
    t, box = in_thread(p.post, body=ORDER, key=k, headers={"X-Test-Sleep": "1"})
    assert wait_until(lambda: upstream.count() == 1, 5)
    dup = p.post(body=ORDER, key=k)
    assert dup.status == 201
    t.join(10)
    assert box["r"].status == 201
    assert upstream.count() == 2
    assert _observed(p, "in_flight") == 1


def test_mode_value_checked(tmp_path):
    bad = tmp_path / "m.ini"
    bad.write_text("[route orders]\npath = /v1/orders\nmode = shadow\n")
    r = subprocess.run([BIN, "-t", "-c", str(bad)], capture_output=True, timeout=10)
    assert r.returncode == 1, r
    assert b"m.ini:3:" in r.stdout + r.stderr, r


# ------------------------------------------------------------ admin record API

def _records(p, method="GET", headers=None, **q):
    from urllib.parse import urlencode
    from conftest import request as rq
    return rq(p.admin_port, method, "/records?" + urlencode(q), headers=headers, timeout=5)


def test_admin_record_lookup_and_delete(proxy, upstream):
    p = proxy({"orders": {"scope": "header:X-Tenant-Id"}})
    k = key()
    first = p.post(body=ORDER, key=k, headers={"X-Tenant-Id": "acme"})
    assert first.status == 201
    r = _records(p, route="orders", key=k, scope="acme")
    assert r.status == 200, r
    j = r.json()
    assert j["state"] == "done" and j["status"] == 201 and j["version"] == 1, j
    assert j["body_bytes"] == len(first.body) and "body" not in j
    assert 0 <= j["age_seconds"] < 60 and 3500 < j["expires_in_seconds"] <= 3600, j
    assert len(j["fingerprint"]) == 32 and len(j["key_hash"]) == 32
    # the body only when asked
    j = _records(p, route="orders", key=k, scope="acme", body="1").json()
    assert j["body"].encode() == first.body
    # another tenant's scope: another record, none
    assert _records(p, route="orders", key=k, scope="other").status == 404
    # clear errors for what is missing or wrong
    assert _records(p, route="orders", key=k).status == 400
    assert _records(p, route="nope", key=k, scope="acme").status == 400
    assert _records(p, route="orders", key="a\x01b", scope="acme").status == 400
    # delete unblocks the client: the next request executes again
    d = _records(p, "DELETE", route="orders", key=k, scope="acme")
    assert d.status == 200 and d.json()["deleted"] is True, d
    assert _records(p, "DELETE", route="orders", key=k, scope="acme").status == 404
    again = p.post(body=ORDER, key=k, headers={"X-Tenant-Id": "acme"})
    assert again.header("Idempotent-Replayed") == "false"
    assert upstream.count(key=k) == 2
    assert k not in p.stderr()                     # logs carry a hash only


def test_admin_record_api_token(proxy, upstream):
    p = proxy(start=False)
    text = open(p.conf).read().replace("[admin]\n", "[admin]\ntoken = s3cret\n")
    with open(p.conf, "w") as f:
        f.write(text)
    p.start()
    k = key()
    assert p.post(body=ORDER, key=k).status == 201
    r = _records(p, route="orders", key=k)
    assert r.status == 401 and r.header("WWW-Authenticate") == "Bearer", r
    assert _records(p, route="orders", key=k, headers={"Authorization": "Bearer wrong"}).status == 401
    ok = _records(p, route="orders", key=k, headers={"Authorization": "Bearer s3cret"})
    assert ok.status == 200 and ok.json()["state"] == "done", ok
    assert p.admin("/metrics").status == 200       # the token guards records only
