"""End-to-end tests of the transparent path (SPEC "Every other route:
transparent, streamed"; README "Every other path: streamed" and its framing
rules) with real clients on raw sockets, python3-websockets, and the
streaming upstream (test/streamup.py), which says what it received and
executed and hashes every body byte. Sizes stay small here: this suite
also runs under the sanitizers. The gigabyte streams, memory bounds and
slowhttptest runs are in test/faults/test_streams.py.

Covered: HTTP/1.0 clients (keep-alive and not; a chunked answer de-chunked
and delimited by the close), pipelining (protected and pass-through mixed,
answers in order), Expect: 100-continue (the 100 before the body; no 100
before a 413), chunked uploads to both kinds of route, HEAD, server-sent
events timed event by event, a WebSocket echo and an Upgrade refused on a
protected route, every error the HTTP layer answers in the JSON and the
problem+json shapes, a 413 the client can read before the close, a client
that leaves mid-stream (the upstream side closed, no descriptor left), the
strict framing cases each refused and counted once, what RFC 9112 allows
accepted, and the refusal log rate-limited with an exact count."""
import asyncio
import hashlib
import json
import os
import re
import socket
import threading
import time
import uuid

import pytest

from conftest import HOST
from streamclient import (MB, connect, download, exchange, fd_count, peer_state, Reader,
                          requests_total, upload, wait_fds)
from streamclient import upstream_fixture  # noqa: F401 (the upstream: streamup.py)
import streamup

ROUTES = {
    "orders": {},                                       # POST /v1/orders
    "probs": {"path": "/p/*", "methods": "GET POST", "error_format": "problem"},
    "wsorders": {"path": "/v1/wsorders", "methods": "GET POST"},
}
OPTS = {"workers": "1", "passthrough_max_body": "1m"}
MAX_BODY = 64 * 1024            # conftest's [proxy] max_body


@pytest.fixture
def px(proxy):
    return proxy(dict(ROUTES), proxy_opts=dict(OPTS))


def key():
    return "k-" + str(uuid.uuid4())


def req(method, target, headers=(), body=b"", minor=1, length=True):
    """Raw request bytes; a Content-Length is added for a body unless
    length is False (the caller frames it)."""
    lines = ["%s %s HTTP/1.%d" % (method, target, minor), "Host: x"]
    lines += ["%s: %s" % kv for kv in headers]
    if body and length:
        lines.append("Content-Length: %d" % len(body))
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def chunked(*parts, ext=b""):
    return b"".join(b"%x%s\r\n%s\r\n" % (len(p), ext, p) for p in parts) + b"0\r\n\r\n"


def error_of(a, status, code, problem=False):
    """a is idemproxy's own error in the JSON (or problem+json) shape."""
    assert a.status == status, (a.status, a.raw_head, a.body)
    ctype = (a.header("Content-Type") or "").split(";")[0].strip()
    j = json.loads(a.body)
    if problem:
        assert ctype == "application/problem+json", (ctype, a.body)
        assert j["code"] == code and j["status"] == status, j
        assert j.get("title") and j.get("type"), j
    else:
        assert ctype == "application/json", (ctype, a.body)
        assert set(j) == {"error"} and j["error"]["code"] == code, j
        assert j["error"]["message"], j


def heads(upstream):
    """Request heads the upstream has read so far."""
    return upstream.stats()["heads"]


# ------------------------------------------------------------ HTTP/1.0

def test_http10_without_keepalive_is_answered_and_closed(px, upstream):
    (a,), state = exchange(px.port, req("GET", "/echo?v=10", minor=0))
    assert a.status == 200 and a.framing == "length", a.raw_head
    assert json.loads(a.body)["path"] == "/echo?v=10"
    assert a.header("Transfer-Encoding") is None
    assert state == "closed", state
    assert [e["path"] for e in upstream.log("/echo")] == ["/echo?v=10"]


def test_http10_keepalive_carries_the_next_request(px, upstream):
    ka = [("Connection", "keep-alive")]
    data = req("GET", "/echo?n=1", ka, minor=0) + req("GET", "/echo?n=2", ka, minor=0)
    (a, b), state = exchange(px.port, data, answers=2)
    for ans, n in ((a, 1), (b, 2)):
        assert ans.status == 200 and ans.framing == "length", ans.raw_head
        assert (ans.header("Connection") or "").lower() == "keep-alive", ans.raw_head
        assert json.loads(ans.body)["path"] == "/echo?n=%d" % n
    assert state == "open", "a 1.0 keep-alive connection was closed after its answer"
    assert len(upstream.log("/echo")) == 2


@pytest.mark.parametrize("keepalive", [False, True])
def test_http10_gets_a_chunked_answer_dechunked_and_closed(px, upstream, keepalive):
    """The upstream answers chunked; a 1.0 client cannot read chunked, so
    the body comes plain and ends with the connection (even where the
    client asked to keep it)."""
    n = 300 * 1000 + 7
    hdrs = [("Connection", "keep-alive")] if keepalive else []
    a = download(px.port, "/data?n=%d&framing=chunked&id=ten" % n, headers=hdrs, minor=0)
    assert a.status == 200, a.raw_head
    assert a.header("Transfer-Encoding") is None and a.header("Content-Length") is None
    assert (a.header("Connection") or "").lower() == "close", a.raw_head
    assert a.framing == "close" and a.nbytes == n
    assert a.sha256 == streamup.expected_digest(n) == upstream.wait_transfer_end("ten")["sha256"]


def test_http10_post_to_a_protected_route_is_replayed(px, upstream):
    k = key()
    body = b'{"sku":"book","qty":1}'
    data = req("POST", "/v1/orders", [("Idempotency-Key", k),
                                      ("Content-Type", "application/json")], body, minor=0)
    (first,), state = exchange(px.port, data)
    (again,), _ = exchange(px.port, data)
    assert first.status == 201 and first.header("Idempotent-Replayed") == "false"
    assert again.status == 201 and again.header("Idempotent-Replayed") == "true"
    assert again.body == first.body
    assert state == "closed"
    assert [e["key"] for e in upstream.log("/v1/orders")] == [k]


# ------------------------------------------------------------ pipelining

def test_pipelined_requests_answered_in_order(px, upstream):
    """Seven requests in one write, protected and pass-through mixed: the
    answers come in the order asked, each the right one; the protected
    key executes once and its second request is a replay."""
    k = key()
    order = b'{"sku":"pen","qty":2}'
    okey = [("Idempotency-Key", k), ("Content-Type", "application/json")]
    blob = os.urandom(1000)
    data = (req("GET", "/echo?i=1")
            + req("POST", "/v1/orders", okey, order)
            + req("POST", "/data?id=pipe-up", [], blob)
            + req("POST", "/v1/orders", okey, order)
            + req("GET", "/data?n=200000&framing=chunked&id=pipe-down")
            + req("HEAD", "/echo?i=6")
            + req("GET", "/echo?i=7"))
    ans, state = exchange(px.port, data, answers=7, heads=(5,))
    assert [a.status for a in ans] == [200, 201, 201, 201, 200, 200, 200], \
        [a.raw_head for a in ans]
    assert json.loads(ans[0].body)["path"] == "/echo?i=1"
    assert ans[1].header("Idempotent-Replayed") == "false"
    assert json.loads(ans[2].body)["sha256"] == hashlib.sha256(blob).hexdigest()
    assert ans[3].header("Idempotent-Replayed") == "true" and ans[3].body == ans[1].body
    assert len(ans[4].body) == 200000 and ans[4].framing == "chunked"
    assert ans[5].body == b""
    assert json.loads(ans[6].body)["path"] == "/echo?i=7"
    assert state == "open"
    log = upstream.log()
    assert [e["path"] for e in log] == ["/echo?i=1", "/v1/orders", "/data?id=pipe-up",
                                        "/data?n=200000&framing=chunked&id=pipe-down",
                                        "/echo?i=6", "/echo?i=7"], [e["path"] for e in log]
    assert [e.get("key") for e in log if e["path"] == "/v1/orders"] == [k]


# ------------------------------------------------------------ Expect: 100-continue

def expect_exchange(port, head, body, wait=2.0):
    """Send head only, wait for idemproxy's first answer; if it is a 100,
    send body and read the final answer. (first head, final Answer,
    peer state)."""
    s = connect(port, None, 10)
    try:
        s.sendall(head)
        r = Reader(s)
        s.settimeout(wait)
        first = r.head(interim=True)
        s.settimeout(10)
        final = first
        if first.status == 100:
            s.sendall(body)
            final = r.head()
        kept = []
        r.body(final, lambda mv: kept.append(bytes(mv)))
        final.body = b"".join(kept)
        return first, final, peer_state(s, 0.5)
    finally:
        s.close()


@pytest.mark.parametrize("path", ["/data?id=exp", "/v1/orders"])
def test_expect_100_continue_before_the_body(px, upstream, path):
    k = key()
    body = b'{"sku":"cup","qty":3}'
    head = req("POST", path, [("Expect", "100-continue"), ("Idempotency-Key", k),
                              ("Content-Length", str(len(body)))])
    first, final, _ = expect_exchange(px.port, head, body)
    assert first.status == 100, first.raw_head
    assert final.status == 201, (final.raw_head, final.body)
    e = [e for e in upstream.log() if e["path"] == path]
    assert len(e) == 1, e
    assert not any(k2.lower() == "expect" for k2, _ in e[0]["headers"]), \
        "Expect forwarded: the upstream would send a second 100"
    if path == "/data?id=exp":
        assert upstream.transfer("exp")["received"] == len(body)


@pytest.mark.parametrize("path,length", [("/v1/orders", MAX_BODY + 1),
                                         ("/data?id=exp-big", 2 * MB)])
def test_expect_100_continue_refused_for_its_size_gets_413_without_100(px, upstream, path,
                                                                       length):
    """A Content-Length over the route's max_body (protected) or over
    passthrough_max_body: 413 at once, never a 100, nothing forwarded."""
    before = heads(upstream)
    head = req("POST", path, [("Expect", "100-continue"), ("Idempotency-Key", key()),
                              ("Content-Length", str(length))])
    first, final, state = expect_exchange(px.port, head, b"")
    error_of(first, 413, "PAYLOAD_TOO_LARGE")
    assert state in ("closed", "reset"), state
    assert heads(upstream) == before, "the refused request reached the upstream"


# ------------------------------------------------------------ chunked uploads

def test_chunked_upload_passthrough_streams_as_chunked(px, upstream):
    """Chunks of odd sizes, with extensions and a trailer: the upstream
    gets every byte (its checksum), framed chunked (streamed, not read
    whole), without the trailer."""
    blob = os.urandom(700 * 1000)
    cuts = [0, 1, 4096, 70000, 333333, 700000]
    parts = [blob[a:b] for a, b in zip(cuts, cuts[1:])]
    body = b"".join(b"%x;part=%d\r\n%s\r\n" % (len(p), i, p) for i, p in enumerate(parts))
    body += b"0\r\nX-Trailer: dropped\r\n\r\n"
    data = req("POST", "/data?id=chunk-up", [("Transfer-Encoding", "chunked")], body,
               length=False)
    (a,), _ = exchange(px.port, data)
    assert a.status == 201, (a.raw_head, a.body)
    j = json.loads(a.body)
    assert j["bytes"] == len(blob) and j["framing"] == "chunked", j
    assert j["sha256"] == hashlib.sha256(blob).hexdigest()


def test_chunked_upload_protected_is_forwarded_whole_and_replayed(px, upstream):
    """A protected route reads the chunked body whole and forwards it with
    a Content-Length; a retry sent with a Content-Length is the same
    request (replayed, one execution)."""
    k = key()
    body = b'{"sku":"lamp","qty":1,"note":"' + b"n" * 5000 + b'"}'
    hdr = [("Idempotency-Key", k), ("Content-Type", "application/json")]
    data = req("POST", "/v1/orders", hdr + [("Transfer-Encoding", "chunked")],
               chunked(body[:10], body[10:4000], body[4000:]), length=False)
    (first,), _ = exchange(px.port, data)
    assert first.status == 201 and first.header("Idempotent-Replayed") == "false", first.body
    (again,), _ = exchange(px.port, req("POST", "/v1/orders", hdr, body))
    assert again.header("Idempotent-Replayed") == "true" and again.body == first.body
    log = upstream.log("/v1/orders")
    assert len(log) == 1, log
    names = {n.lower(): v for n, v in log[0]["headers"]}
    assert names.get("content-length") == str(len(body)) and "transfer-encoding" not in names
    assert log[0]["bytes"] == len(body)


def test_chunked_upload_protected_over_max_body_is_413(px, upstream):
    before = heads(upstream)
    blob = b"x" * (MAX_BODY // 2)
    data = req("POST", "/v1/orders", [("Idempotency-Key", key()),
                                      ("Transfer-Encoding", "chunked")],
               chunked(blob, blob, blob), length=False)
    (a,), state = exchange(px.port, data)
    error_of(a, 413, "PAYLOAD_TOO_LARGE")
    assert state in ("closed", "reset")
    assert heads(upstream) == before


# ------------------------------------------------------------ HEAD

@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_head_has_no_body_and_the_connection_goes_on(px, upstream, framing):
    data = (req("HEAD", "/data?n=12345&framing=%s&id=h" % framing)
            + req("GET", "/echo?after=head"))
    (h, g), state = exchange(px.port, data, answers=2, heads=(0,))
    assert h.status == 200 and h.body == b""
    if framing == "length":
        assert h.header("Content-Length") == "12345", h.raw_head
    assert g.status == 200 and json.loads(g.body)["path"] == "/echo?after=head", g.body
    assert state == "open"


# ------------------------------------------------------------ server-sent events

def test_server_sent_events_arrive_as_sent(proxy, upstream):
    """Each event reaches the client about when the upstream sent it (the
    upstream's send time is in the event), not at the end; the stream
    outlasts client_header_timeout and is not cut by it."""
    p = proxy(dict(ROUTES), proxy_opts=dict(OPTS, client_header_timeout="1s"))
    n, interval = 6, 0.35
    s = connect(p.port, None, 10)
    got = []
    try:
        s.sendall(req("GET", "/events?n=%d&interval=%s&id=sse" % (n, interval),
                      [("Accept", "text/event-stream")]))
        r = Reader(s)
        a = r.head()
        assert a.status == 200 and a.header("Content-Type") == "text/event-stream"
        text = b""

        def sink(mv):
            nonlocal text
            text += bytes(mv)
            while b"\n\n" in text:
                ev, text = text.split(b"\n\n", 1)
                data = json.loads(re.search(rb"data: (.*)", ev).group(1))
                got.append((data["i"], data["t"], time.time()))
        r.body(a, sink)
    finally:
        s.close()
    assert [i for i, _, _ in got] == list(range(1, n + 1)), got
    lags = [round(at - sent, 3) for _, sent, at in got]
    assert max(lags) < 0.3, ("events held back", lags)
    assert got[-1][2] - got[0][2] > (n - 1) * interval * 0.8, "events bunched together"
    sent = upstream.stats()["events"]["sse"]
    assert len(sent) == n and all(abs(a - b) < 1e-5 for a, (_, b, _) in zip(sent, got))


# ------------------------------------------------------------ WebSocket

def need_websockets():
    try:
        import websockets
    except ImportError:
        pytest.fail("python3-websockets is missing: run scripts/deps.sh")
    return websockets


def ws_run(coro):
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(asyncio.wait_for(coro, 20))
    finally:
        loop.close()


def test_websocket_echo_through_idemproxy(px, upstream):
    """python3-websockets on both ends (the upstream runs its sans-I/O
    server): a text and a 3 MB binary message echoed byte for byte, a
    clean close (1000), and nothing left open on either side."""
    websockets = need_websockets()
    base = fd_count(px.proc.pid)
    blob = os.urandom(3 * MB)

    async def talk():
        async with websockets.connect("ws://%s:%d/ws" % (HOST, px.port),
                                      max_size=None, compression=None) as ws:
            await ws.send("hello, tunnel")
            t = await ws.recv()
            await ws.send(blob)
            b = await ws.recv()
            for i in range(20):
                await ws.send("m%d" % i)
            small = [await ws.recv() for _ in range(20)]
            await ws.close()
            return t, b, small, ws.close_code
    t, b, small, code = ws_run(talk())
    assert t == "hello, tunnel"
    assert b == blob
    assert small == ["m%d" % i for i in range(20)]
    assert code == 1000
    ws = upstream.stats()["ws"]
    assert len(ws) == 1 and ws[0]["clean"] and ws[0]["close_code"] == 1000, ws
    kinds = [(k, n) for k, n, _ in ws[0]["messages"]]
    assert kinds[:2] == [("text", 13), ("binary", 3 * MB)], kinds[:3]
    assert len(kinds) == 22, kinds
    assert ws[0]["messages"][1][2] == hashlib.sha256(blob).hexdigest()
    assert upstream.wait_idle(5), upstream.stats()["open_paths"]
    assert wait_fds(px.proc.pid, base, 5) <= base


def test_websocket_idle_tunnel_closed_after_client_timeout(proxy, upstream):
    websockets = need_websockets()
    p = proxy(dict(ROUTES), proxy_opts=dict(OPTS, client_timeout="1s"))

    async def idle():
        async with websockets.connect("ws://%s:%d/ws" % (HOST, p.port),
                                      ping_interval=None) as ws:
            await ws.send("x")
            assert await ws.recv() == "x"
            t0 = time.monotonic()
            try:
                await asyncio.wait_for(ws.recv(), 6)
            except websockets.ConnectionClosed:
                return time.monotonic() - t0
            return None
    took = ws_run(idle())
    assert took is not None and 0.5 < took < 4, took
    assert upstream.wait_idle(5)


def test_upgrade_on_a_protected_route_is_refused(px, upstream):
    websockets = need_websockets()
    before = heads(upstream)

    async def attempt():
        try:
            async with websockets.connect("ws://%s:%d/v1/wsorders" % (HOST, px.port),
                                          extra_headers={"Idempotency-Key": key()}):
                return None
        except websockets.InvalidStatusCode as e:
            return e.status_code
    assert ws_run(attempt()) == 400
    data = req("GET", "/v1/wsorders", [("Connection", "Upgrade"), ("Upgrade", "websocket"),
                                       ("Idempotency-Key", key()),
                                       ("Sec-WebSocket-Version", "13"),
                                       ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")])
    (a,), _ = exchange(px.port, data)
    error_of(a, 400, "UPGRADE_NOT_ALLOWED")
    assert heads(upstream) == before, "an Upgrade on a protected route was forwarded"


# ------------------------------------------------------------ errors in our shape

ERRORS = {
    # name: (request bytes for target T, status, code); T names the route
    "malformed": (lambda t: req("POST", t, [("Content-Length", "1"),
                                            ("Transfer-Encoding", "chunked")], b"0\r\n\r\n",
                                length=False), 400, "BAD_REQUEST"),
    "bad_chunk": (lambda t: req("POST", t, [("Transfer-Encoding", "chunked"),
                                            ("Idempotency-Key", "k1")], b"0x3\r\nabc\r\n0\r\n\r\n",
                                length=False), 400, "BAD_REQUEST"),
    "too_large": (lambda t: req("POST", t, [("Content-Length", "1000000000000"),
                                            ("Idempotency-Key", "k1")]), 413,
                  "PAYLOAD_TOO_LARGE"),
    "fields_too_large": (lambda t: req("GET", t, [("X-Pad-%d" % i, "p" * 1000)
                                                  for i in range(10)]), 431,
                         "HEADER_FIELDS_TOO_LARGE"),
    "not_implemented": (lambda t: req("POST", t, [("Transfer-Encoding", "gzip, chunked")],
                                      b"0\r\n\r\n", length=False), 501, "NOT_IMPLEMENTED"),
    "version": (lambda t: ("GET %s HTTP/2.0\r\nHost: x\r\n\r\n" % t).encode(), 505,
                "HTTP_VERSION_NOT_SUPPORTED"),
    "head_timeout": (lambda t: [("GET %s HTTP/1.1\r\nHost: x\r\n" % t).encode()], 408,
                     "REQUEST_TIMEOUT"),
    "body_timeout": (lambda t: [req("POST", t, [("Content-Length", "10"),
                                                ("Idempotency-Key", "k1")]) + b"abc"],
                     408, "REQUEST_TIMEOUT"),
}


# A pass-through body streams: its head has left for the upstream when a
# bad chunk line or a stalled body is found (nothing is executed). A
# protected one is read whole first, so nothing at all is sent.
STREAMED = {"bad_chunk", "body_timeout"}


@pytest.fixture
def errpx(proxy):
    return proxy(dict(ROUTES), proxy_opts=dict(OPTS, max_headers="8k",
                                               client_header_timeout="700ms",
                                               client_body_timeout="700ms"))


@pytest.mark.parametrize("fmt", ["json", "problem"])
@pytest.mark.parametrize("name", list(ERRORS))
def test_http_layer_errors_in_our_shape(errpx, upstream, name, fmt):
    """What the HTTP layer refuses is answered in idemproxy's shape (the
    route's error_format where the request line names a route), counted
    once, closed after the answer, and never forwarded."""
    make, status, code = ERRORS[name]
    target = "/p/x" if fmt == "problem" else "/anything"
    outcome = "too_large" if status == 413 else "bad_request"
    before = requests_total(errpx.admin_port, outcome)
    seen = heads(upstream)
    data = make(target)
    (a,), state = exchange(errpx.port, data, timeout=5)
    error_of(a, status, code, problem=fmt == "problem")
    assert state in ("closed", "reset"), state
    assert requests_total(errpx.admin_port, outcome) == before + 1
    if fmt == "problem" or name not in STREAMED:
        assert heads(upstream) == seen, "the refused request reached the upstream"
    assert upstream.log() == [], "a refused request was executed"


def test_uri_too_long_in_our_shape(errpx, upstream):
    """A request line longer than max_headers: 414 (JSON: the line, and so
    its route, was never read whole)."""
    before = requests_total(errpx.admin_port, "bad_request")
    (a,), state = exchange(errpx.port, req("GET", "/p/" + "u" * 9000))
    error_of(a, 414, "URI_TOO_LONG")
    assert state in ("closed", "reset")
    assert requests_total(errpx.admin_port, "bad_request") == before + 1


@pytest.mark.parametrize("path", ["/data?id=huge", "/v1/orders"])
def test_413_is_readable_before_the_close(px, upstream, path):
    """A huge Content-Length, and the client goes on sending its body: the
    413 is answered, and the client reads all of it before the
    connection ends (a close with unread input would reset it first)."""
    s = connect(px.port, None, 10)
    stop = threading.Event()
    poured = [0]

    def pour():
        chunk = b"z" * 65536
        try:
            while not stop.is_set():
                s.sendall(chunk)
                poured[0] += len(chunk)
        except OSError:
            pass
    try:
        s.sendall(req("POST", path, [("Content-Length", str(10 ** 12)),
                                     ("Idempotency-Key", key())]))
        t = threading.Thread(target=pour, daemon=True)
        t.start()
        deadline = time.monotonic() + 5      # a megabyte of body on its way
        while poured[0] < MB and t.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        r = Reader(s)
        a = r.head()
        kept = []
        r.body(a, lambda mv: kept.append(bytes(mv)))
        a.body = b"".join(kept)
        error_of(a, 413, "PAYLOAD_TOO_LARGE")
        stop.set()
        t.join(10)
        assert peer_state(s, 8) in ("closed", "reset")
    finally:
        stop.set()
        s.close()
    assert not [e for e in upstream.log() if e["path"] == path]


# ------------------------------------------------------------ the client leaves

@pytest.mark.parametrize("direction", ["download", "upload", "upload-chunked"])
def test_client_leaving_mid_stream_closes_the_upstream_side(proxy, upstream, direction):
    """The client reads (or sends) 4 MB of a 1 GB body and hangs up: the
    upstream's side is closed soon after (its transfer ends aborted, no
    connection left open on it) and idemproxy's descriptors return to
    where they were."""
    px = proxy(dict(ROUTES), proxy_opts={"workers": "1"})    # no passthrough_max_body
    pid = px.proc.pid
    base = fd_count(pid)
    tid = "cut-" + direction
    s = connect(px.port, None, 10)
    try:
        if direction == "download":
            s.sendall(req("GET", "/data?n=%d&id=%s" % (1024 * MB, tid)))
            r = Reader(s)
            a = r.head()
            assert a.status == 200
            got = 0
            while got < 4 * MB:
                got += r.fill()
        else:
            chunk = direction == "upload-chunked"
            frame = ([("Transfer-Encoding", "chunked")] if chunk
                     else [("Content-Length", str(1024 * MB))])
            s.sendall(req("POST", "/data?id=%s" % tid, frame))
            piece = os.urandom(256 * 1024)
            for _ in range(16):
                s.sendall(b"%x\r\n%s\r\n" % (len(piece), piece) if chunk else piece)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                e = upstream.transfer(tid)
                if e and e["received"] >= 2 * MB:
                    break
                time.sleep(0.02)
    finally:
        s.close()
    t0 = time.monotonic()
    e = upstream.wait_transfer_end(tid, 5)
    assert e is not None and e["aborted"] and not e["done"], e
    assert time.monotonic() - t0 < 3
    assert upstream.wait_idle(5), upstream.stats()["open_paths"]
    n = wait_fds(pid, base, 5)
    assert n <= base, "idemproxy holds %d descriptors, %d before" % (n, base)
    assert px.req("GET", "/echo?after").status == 200


# ------------------------------------------------------------ strict framing

def post_chunked(body, path="/echo", headers=()):
    return req("POST", path, [("Transfer-Encoding", "chunked")] + list(headers), body,
               length=False)


FRAMING = {
    "cl_plus": req("POST", "/echo", [("Content-Length", "+5")]) + b"hello",
    "cl_minus": req("POST", "/echo", [("Content-Length", "-5")]) + b"hello",
    "cl_hex": req("POST", "/echo", [("Content-Length", "0x5")]) + b"hello",
    "cl_blank_inside": req("POST", "/echo", [("Content-Length", "1 0")]) + b"0123456789",
    "cl_list": req("POST", "/echo", [("Content-Length", "5, 5")]) + b"hello",
    "cl_twice": req("POST", "/echo", [("Content-Length", "5"), ("Content-Length", "5")])
                + b"hello",
    "chunk_plus": post_chunked(b"+3\r\nabc\r\n0\r\n\r\n"),
    "chunk_minus": post_chunked(b"-3\r\nabc\r\n0\r\n\r\n"),
    "chunk_hex_prefix": post_chunked(b"0x3\r\nabc\r\n0\r\n\r\n"),
    "chunk_blank_before": post_chunked(b" 3\r\nabc\r\n0\r\n\r\n"),
    "chunk_blank_inside": post_chunked(b"1 0\r\n0123456789\r\n0\r\n\r\n"),
    "chunk_bare_lf_size": post_chunked(b"3\nabc\r\n0\r\n\r\n"),
    "chunk_bare_lf_data": post_chunked(b"3\r\nabc\n0\r\n\r\n"),
    "chunk_bare_lf_last": post_chunked(b"3\r\nabc\r\n0\n\r\n"),
    "te_http10": req("POST", "/echo", [("Transfer-Encoding", "chunked")],
                     b"3\r\nabc\r\n0\r\n\r\n", minor=0, length=False),
    "ctl_soh_in_value": req("GET", "/echo", [("X-Note", "a\x01b")]),
    "ctl_esc_in_value": req("GET", "/echo", [("X-Note", "a\x1bb")]),
    "ctl_del_in_value": req("GET", "/echo", [("X-Note", "a\x7fb")]),
    "cl_and_te": req("POST", "/echo", [("Content-Length", "3"),
                                       ("Transfer-Encoding", "chunked")],
                     b"3\r\nabc\r\n0\r\n\r\n", length=False),
    "te_twice": req("POST", "/echo", [("Transfer-Encoding", "chunked"),
                                      ("Transfer-Encoding", "chunked")],
                    b"3\r\nabc\r\n0\r\n\r\n", length=False),
    # RFC 9112 3.2: an HTTP/1.1 request without Host, or with two, is a 400
    "host_missing": req("POST", "/echo", [], b"hello").replace(b"Host: x\r\n", b"", 1),
    "host_twice": req("POST", "/echo", [("Host", "y")], b"hello"),
}


@pytest.mark.parametrize("name", list(FRAMING))
def test_framing_refused_in_our_shape_and_counted(px, upstream, name):
    """Each case: 400 BAD_REQUEST in the JSON shape, the connection closed,
    bad_request counted exactly once, nothing executed upstream (and on a
    protected route, where the body is read whole, nothing even sent)."""
    data = FRAMING[name]
    for path in ("/echo", "/v1/orders"):
        data_p = data.replace(b" /echo ", b" " + path.encode() + b" ", 1)
        if path == "/v1/orders":
            data_p = data_p.replace(b"Host: x\r\n", b"Host: x\r\nIdempotency-Key: f-1\r\n", 1)
        before = requests_total(px.admin_port, "bad_request")
        seen = heads(upstream)
        (a,), state = exchange(px.port, data_p)
        error_of(a, 400, "BAD_REQUEST")
        assert state in ("closed", "reset"), (path, state)
        assert requests_total(px.admin_port, "bad_request") == before + 1, path
        if path == "/v1/orders" or not name.startswith("chunk_"):
            assert heads(upstream) == seen, (path, "reached the upstream")
    assert upstream.log() == [], upstream.log()
    assert upstream.wait_idle(5)


ALLOWED = {
    "chunk_ext": post_chunked(b"3;ext=1\r\nabc\r\n4;a=b;c\r\ndefg\r\n0\r\n\r\n"),
    "chunk_ext_quoted": post_chunked(b'3;name="x;y"\r\nabc\r\n4\r\ndefg\r\n0;last\r\n\r\n'),
    "te_tab": req("POST", "/echo", [("Transfer-Encoding", "\tchunked")],
                  b"3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n", length=False),
    "te_blanks_around": req("POST", "/echo", [("Transfer-Encoding", " \tchunked \t")],
                            b"7\r\nabcdefg\r\n0\r\n\r\n", length=False),
    "cl_blanks_around": req("POST", "/echo", [("Content-Length", "\t7 ")], b"abcdefg",
                            length=False),
    "http10_without_host": req("POST", "/echo", [("Connection", "keep-alive")], b"abcdefg",
                               minor=0).replace(b"Host: x\r\n", b"", 1),
}


@pytest.mark.parametrize("name", list(ALLOWED))
def test_framing_rfc9112_allows_is_accepted(px, upstream, name):
    before = requests_total(px.admin_port, "bad_request")
    (a,), state = exchange(px.port, ALLOWED[name])
    assert a.status == 200, (a.raw_head, a.body)
    j = json.loads(a.body)
    assert j["bytes"] == 7 and j["sha256"] == hashlib.sha256(
        b"abcdefg").hexdigest(), j
    assert state == "open"
    assert requests_total(px.admin_port, "bad_request") == before


def test_refusals_are_rate_limited_in_the_log_and_counted_exactly(px, upstream):
    """40 refusals in a burst, then one more a second later: every one is
    counted; at most 10 "request refused" lines a second are written, and
    the lines' refusals_not_logged fields account for all the others."""
    before = requests_total(px.admin_port, "bad_request")
    for _ in range(40):
        exchange(px.port, FRAMING["cl_plus"])
    time.sleep(1.1)           # the limit is per second: a new second logs again
    exchange(px.port, FRAMING["cl_hex"])
    assert requests_total(px.admin_port, "bad_request") == before + 41
    with open(px.errpath) as f:
        lines = [json.loads(x) for x in f if x.startswith("{") and '"request refused"' in x]
    per_second = {}
    for ln in lines:
        per_second[ln["ts"][:19]] = per_second.get(ln["ts"][:19], 0) + 1
    assert max(per_second.values()) <= 10, per_second
    assert len(lines) < 41
    assert sum(1 + ln.get("refusals_not_logged", 0) for ln in lines) == 41, lines
    assert any(ln.get("refusals_not_logged", 0) > 0 for ln in lines), lines


# ------------------------------------------------------------ backpressure on uploads

@pytest.mark.parametrize("chunk", [False, True])
def test_upload_to_a_stalled_upstream_waits_not_408(proxy, upstream, chunk):
    """The upstream stops reading an upload for 1.5 s, longer than
    client_body_timeout: the client is held back (backpressure), not
    refused as a slow client; every byte arrives once the upstream reads
    again."""
    p = proxy(dict(ROUTES), proxy_opts={"workers": "1", "client_body_timeout": "500ms"})
    n = 24 * MB
    a, sent = upload(p.port, "/data?id=stall&stall=1.5&stall_at=%d" % MB, n, chunked=chunk)
    assert a.status == 201, (a.raw_head, a.body)
    j = json.loads(a.body)
    assert j["bytes"] == n and j["sha256"] == sent, j
