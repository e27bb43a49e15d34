"""Scenario 9: hostile requests over raw sockets. Each must get a 4xx (and
a closed connection where the framing is in doubt), nothing may reach the
upstream, no appended request may be smuggled through, and the proxy must
still serve afterwards."""
import re
import socket
import time

import pytest

from conftest import HOST, ROUTE, Cluster

B = b'{"a":1}'
SMUGGLED = (b"POST /smuggled HTTP/1.1\r\nHost: x\r\nIdempotency-Key: smuggled\r\n"
            b"Content-Type: application/json\r\nContent-Length: 7\r\n\r\n" + B)


def post(headers, body=B, path=b"/v1/orders", key=b"hostile-1", cl=True, eol=b"\r\n"):
    lines = [b"POST " + path + b" HTTP/1.1", b"Host: x", b"Content-Type: application/json"]
    if key is not None:
        lines.append(b"Idempotency-Key: " + key)
    lines += headers
    if cl:
        lines.append(b"Content-Length: %d" % len(body))
    return eol.join(lines) + eol + eol + body


CASES = [
    # (id, request bytes, connection must be closed)
    ("cl_and_te_smuggle", post([b"Content-Length: 6", b"Transfer-Encoding: chunked"],
                               body=b"0\r\n\r\n" + SMUGGLED, cl=False), True),
    ("te_and_cl_smuggle", post([b"Transfer-Encoding: chunked", b"Content-Length: 5"],
                               body=b"0\r\n\r\n" + SMUGGLED, cl=False), True),
    ("cl_and_te_other_path", post([b"Content-Length: 5", b"Transfer-Encoding: chunked"],
                                  body=b"0\r\n\r\n" + SMUGGLED, path=b"/other", cl=False), True),
    ("two_cl_same", post([b"Content-Length: 7"], body=B), True),
    ("two_cl_differ_smuggle", post([b"Content-Length: 7", b"Content-Length: %d"
                                    % (7 + len(SMUGGLED))], body=B + SMUGGLED, cl=False), True),
    ("te_gzip_chunked", post([b"Transfer-Encoding: gzip, chunked"],
                             body=b"7\r\n" + B + b"\r\n0\r\n\r\n", cl=False), True),
    ("two_te", post([b"Transfer-Encoding: chunked", b"Transfer-Encoding: chunked"],
                    body=b"7\r\n" + B + b"\r\n0\r\n\r\n", cl=False), True),
    ("te_space_before_colon", post([b"Transfer-Encoding : chunked"],
                                   body=b"0\r\n\r\n" + SMUGGLED), True),
    ("cl_space_before_colon", post([b"Content-Length : 7"], body=B, cl=False), True),
    ("space_before_colon_smuggle", post([b"X-Foo : bar"], body=SMUGGLED, path=b"/pass",
                                        key=None), True),
    ("obs_fold_header", post([b"X-Fold: a", b" b"]), True),
    ("obs_fold_content_length", post([b"Content-Length: 7", b" 0"], body=B, cl=False), True),
    ("obs_fold_te", post([b"Transfer-Encoding:", b" chunked", b"Content-Length: 7"],
                         body=B, cl=False), True),
    ("bare_lf", post([], eol=b"\n"), True),
    ("two_keys", post([b"Idempotency-Key: hostile-2"]), True),
    ("two_keys_same", post([b"Idempotency-Key: hostile-1"]), True),
    ("underscore_key", post([b"Idempotency_Key: hostile-u"], key=None), False),
    ("key_cr", post([], key=b"ab\rcd"), False),
    ("key_lf", post([], key=b"ab\ncd"), False),
    ("key_nul", post([], key=b"ab\x00cd"), True),
    ("nul_in_other_header", post([b"X-Note: a\x00b"]), True),
    ("nul_in_request_line", post([], path=b"/v1/orders\x00/x"), True),
    ("bare_cr", post([b"X-A: a\rb"]), True),
    ("bare_lf_last_line_only", post([]).replace(b"\r\n\r\n", b"\r\n\n"), True),
    ("obs_fold_tab", post([b"X-Fold: a", b"\tb"]), True),
    ("key_non_ascii", post([], key=b"caf\xc3\xa9"), False),
    ("key_10k", post([], key=b"k" * 10240), False),
    ("headers_100k", post([b"X-Pad-%d: %s" % (i, b"p" * 1000) for i in range(100)]), True),
    ("get_with_body_smuggle", b"GET /other HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
                              % len(SMUGGLED) + SMUGGLED, True),
    ("get_chunked_body", b"GET /other HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                         b"0\r\n\r\n" + SMUGGLED, True),
    ("negative_cl", post([b"Content-Length: -1"], cl=False), True),
]

# Header names with a space before the colon were once forwarded (a
# smuggling path); framing_error now refuses any name that is not a token.
# A NUL, an obs-fold line and a bare LF leave no trace in what libevent
# parses; server.c's head filter refuses them from the raw bytes.


def exchange(port, data, timeout=3.0, linger=0.3):
    """Send raw bytes (or a list of parts, 50 ms apart); read until the peer
    closes, or until one complete answer has arrived and `linger` seconds
    more brought nothing (a second answer would mean a second request was
    parsed). (bytes, closed)."""
    s = socket.create_connection((HOST, port), timeout=timeout)
    out, closed = b"", False
    try:
        try:
            for i, part in enumerate([data] if isinstance(data, bytes) else data):
                if i:
                    time.sleep(0.05)
                s.sendall(part)
        except OSError:
            pass
        deadline = time.monotonic() + timeout
        complete_at = None
        while time.monotonic() < deadline:
            if complete_at is not None and time.monotonic() > complete_at + linger:
                break
            s.settimeout(0.05)
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                chunk = None
            except ConnectionResetError:
                closed = True
                break
            if chunk == b"":
                closed = True
                break
            if chunk:
                out += chunk
                head, sep, body = out.partition(b"\r\n\r\n")
                m = re.search(rb"(?i)content-length: *(\d+)", head)
                if sep and m and len(body) >= int(m.group(1)) and complete_at is None:
                    complete_at = time.monotonic()
        return out, closed
    finally:
        s.close()


def _param(case):
    return pytest.param(*case, id=case[0])


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """One Redis, upstream and idemproxy for all the cases (each case
    looks only at the upstream log entries after its start): a case that kills the proxy fails
    its own liveness check."""
    c = Cluster(tmp_path_factory.mktemp("hostile"))
    try:
        c.start_redis()
        c.start_upstream()
        c.proxy({"orders": dict(ROUTE), "other": dict(ROUTE, path="/other")})
        yield c
    finally:
        problems = c.close()
    assert not problems, problems


@pytest.mark.parametrize("cid,data,must_close", [_param(c) for c in CASES])
def test_hostile_request(shared, cid, data, must_close):
    c = shared
    p = c.proxies[0]
    assert p.proc.poll() is None, "the proxy died in an earlier case: %s" % p.stderr()
    base = len(c.log())
    out, closed = exchange(p.port, data)
    status = out[:12]
    # refused: 4xx, or 501 for a transfer coding it does not implement
    ok4xx = out.startswith(b"HTTP/1.1 4") or out.startswith(b"HTTP/1.1 501")
    log = c.log()[base:]
    assert not any(e["path"] == "/smuggled" or e["key"] == "smuggled" for e in log), \
        ("a smuggled request reached the upstream", log)
    assert log == [], ("forwarded to the upstream", status, log)
    assert ok4xx, ("not a 4xx", out[:300])
    assert out.count(b"HTTP/1.") == 1, ("more than one answer: a second request was parsed",
                                        out[:600])
    if must_close:
        assert closed, "connection left open after a framing error: %r" % out[:200]
    # still alive and serving
    assert p.admin("/healthz").status == 200
    a = c.send(p, "after-%s" % cid)
    assert a.status == 201, a
    assert len(c.log()) == base + 1
    c.check(max_exec=1, protected=("/v1/orders", "/other"))


def statuses(out):
    return re.findall(rb"HTTP/1\.1 (\d{3})", out)


def test_head_check_is_per_request(shared):
    """On one keep-alive connection: a clean request whose body holds a NUL
    and bare LFs (bodies are not scanned) is forwarded; the pipelined
    request after it, with a NUL in its head, is refused and not forwarded."""
    c = shared
    p = c.proxies[0]
    base = len(c.log())
    clean = post([], body=b"a\x00\n\nb", path=b"/pass", key=b"head-per-request-1")
    bad = post([], key=b"ab\x00cd")
    out, closed = exchange(p.port, clean + bad)
    log = c.log()[base:]
    assert [(e["path"], e["key"]) for e in log] == [("/pass", "head-per-request-1")], log
    assert len(statuses(out)) == 2 and statuses(out)[1] == b"400", out[:600]
    assert closed


def test_head_check_across_segments(shared):
    """A head delivered a few bytes at a time: a CR at the end of one
    segment and its LF at the start of the next is fine; a NUL or a fold
    arriving in a later segment is still caught."""
    c = shared
    p = c.proxies[0]

    def send_split(parts):
        return exchange(p.port, parts)[0]

    base = len(c.log())
    whole = post([], key=b"split-ok-1")
    cut = whole.index(b"\r\n") + 1
    out = send_split([whole[:cut], whole[cut:cut + 9], whole[cut + 9:]])
    assert statuses(out) == [b"201"], out[:300]
    bad = post([b"X-A: a\x00b"], key=b"split-bad-1")
    at = bad.index(b"\x00")
    out = send_split([bad[:at], bad[at:]])
    assert statuses(out) == [b"400"], out[:300]
    fold = post([b"X-A: a", b" b"], key=b"split-bad-2")
    at = fold.index(b"\r\n b") + 2
    out = send_split([fold[:at], fold[at:]])
    assert statuses(out) == [b"400"], out[:300]
    assert [e["key"] for e in c.log()[base:]] == ["split-ok-1"]


def test_smuggled_duplicate_via_space_before_colon(cluster):
    """A key executed once through idemproxy; then a request on an
    unprotected path carries a header with a space before its colon and,
    as its body, a retry of that key. The upstream must never see it."""
    c = cluster
    p = c.proxy({"orders": dict(ROUTE)}, proxy_opts={"upstream_connections": "1"})
    k = "victim-key-1"
    first = c.send(p, k, body={"a": 1})
    assert first.status == 201
    retry = (b"POST /v1/orders HTTP/1.1\r\nHost: x\r\nIdempotency-Key: " + k.encode() +
             b"\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\r\n" + B)
    out, closed = exchange(p.port, post([b"X-Foo : bar"], body=retry, path=b"/pass", key=None))
    time.sleep(0.3)
    assert len(c.executions(k)) == 1, ("executed again, bypassing idemproxy",
                                       c.executions(k))
    assert out.startswith(b"HTTP/1.1 400") and closed, out[:200]
    c.check(max_exec=1)
