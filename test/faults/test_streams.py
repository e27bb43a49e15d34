"""Large, many and slow streams through idemproxy, with its memory watched
(SPEC "Every other route: transparent, streamed": a small bounded window
per connection, the process's memory flat). The plain binary only: RSS
and time bounds mean nothing under the sanitizers (test/e2e has the
functional cases at small sizes).

- 1 GiB downloads and uploads through a pass-through path, Content-Length
  and chunked, sha256 of every byte on both ends, RSS sampled every 20 ms;
- 10 concurrent streams of 200 MiB (5 down, 5 up): RSS under 64 MB;
- a slow reader (the upstream is paused, not buffered) and a slow writer
  (each piece reaches the upstream before the next is sent);
- a protected answer of 100 MiB over max_store: streamed in full, one
  execution, the record "unstored" before the answer's head arrives,
  retries 409 RESPONSE_NOT_STORED;
- slowloris, slow-body and slow-read runs of slowhttptest with short
  client_header_timeout / client_body_timeout / send_timeout: RSS
  bounded, normal requests answered in under a second throughout, the
  slow connections cut, nothing left open afterwards.

Figures (RSS, MB/s) are printed; `pytest -s` shows them. Measured on the
2-core development machine (Debian 12, loopback, the Python ends hashing
every byte with sha256, so they, not idemproxy, set the pace): 1 GiB at
430 to 760 MB/s each way, idemproxy's RSS from 2.8 MB to at most 3.5 MB;
10 concurrent 200 MiB streams at about 630 MB/s in all, RSS peak 4.6 to
6.4 MB; a reader that stops after 2 MiB holds the upstream at 10 to 13
MiB sent of 256; the 100 MiB protected answer at 420 to 640 MB/s, RSS at
most 3.8 MB; slowloris and slow body (100 connections): RSS at most
3.3 MB, every connection cut within about 2 s; slow read (100
connections, 2 pipelined 4 MB answers each): RSS peak 22 to 27 MB, all
closed by send_timeout; the probing client's slowest answer under 0.1 s."""
import csv
import hashlib
import json
import os
import shutil
import subprocess
import threading
import time
import uuid

import pytest

from conftest import E2E
from streamclient import (MB, Reader, Watch, connect, download, fd_count, requests_total,
                          upload, wait_fds)
from streamclient import upstream_fixture  # noqa: F401 (the upstream: streamup.py)

# the end-to-end suite's Redis and idemproxy fixtures
redis = E2E.redis
proxy = E2E.proxy

GB = 1024 * MB
ROUTES = {"orders": {},
          "big": {"path": "/v1/big", "max_store": "1m", "fingerprint_body": "raw"}}
# what a gigabyte may add to idemproxy's RSS: its windows are 128 KB, so a
# few MB at most; buffering any real part of the body would pass it at once
GROWTH_KB = 8 * 1024


def figures(what, nbytes, seconds, watch):
    print("\n%s: %.0f MB in %.2f s, %.0f MB/s; idemproxy %s"
          % (what, nbytes / MB, seconds, nbytes / MB / seconds, watch.summary()))


# ------------------------------------------------------------ a gigabyte

@pytest.mark.parametrize("framing", ["length", "chunked"])
@pytest.mark.parametrize("direction", ["download", "upload"])
def test_gigabyte_stream(proxy, upstream, direction, framing):
    """1 GiB each way, as the client frames it (an upload) or the upstream
    does (a download): every byte the same on both ends, RSS flat."""
    p = proxy(ROUTES)
    tid = "g-%s-%s" % (direction, framing)
    with Watch(p.proc.pid) as w:
        t0 = time.monotonic()
        if direction == "download":
            a = download(p.port, "/data?n=%d&framing=%s&id=%s" % (GB, framing, tid))
            got = (a.status, a.framing, a.nbytes, a.sha256)
        else:
            a, sent = upload(p.port, "/data?id=" + tid, GB, chunked=framing == "chunked")
            j = json.loads(a.body) if a.status == 201 else {}
            got = (a.status, j.get("framing"), j.get("bytes"), sent)
        took = time.monotonic() - t0
    e = upstream.wait_transfer_end(tid)
    figures("%s 1 GiB %s" % (direction, framing), GB, took, w)
    assert got[:3] == (200 if direction == "download" else 201, framing, GB), (got, a.raw_head)
    assert e["done"] and got[3] == e["sha256"], "the bytes differ on the two ends"
    assert w.peak_kb - w.start_kb < GROWTH_KB, w.summary()


def test_ten_concurrent_streams_under_64mb(proxy, upstream):
    """5 downloads and 5 uploads of 200 MiB at once (2 GiB in all): every
    byte right, idemproxy's RSS under 64 MB throughout."""
    p = proxy(ROUTES)
    n = 200 * MB
    results = {}

    def down(i):
        fr = "chunked" if i % 2 else "length"
        a = download(p.port, "/data?n=%d&framing=%s&id=c%d&seed=%d" % (n, fr, i, i))
        results[i] = (a.status, a.nbytes, a.sha256)

    def up(i):
        a, sent = upload(p.port, "/data?id=c%d" % i, n, chunked=i % 2 == 1, seed=str(i))
        j = json.loads(a.body) if a.status == 201 else {}
        results[i] = (a.status, j.get("bytes"), sent if j.get("sha256") == sent else None)
    threads = [threading.Thread(target=down if i < 5 else up, args=(i,)) for i in range(10)]
    with Watch(p.proc.pid) as w:
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        took = time.monotonic() - t0
    figures("10 concurrent streams of 200 MiB", 10 * n, took, w)
    assert sorted(results) == list(range(10)), results
    for i in range(10):
        status, nbytes, sha = results[i]
        e = upstream.wait_transfer_end("c%d" % i)
        assert status == (200 if i < 5 else 201) and nbytes == n, (i, results[i])
        assert sha is not None and sha == e["sha256"], (i, results[i], e)
    assert w.peak_kb < 64 * 1024, w.summary()


# ------------------------------------------------------------ slow clients

def test_slow_reader_pauses_the_upstream(proxy, upstream):
    """A client reads 2 MiB of a 256 MiB answer slowly, then stops: the
    upstream is held back (what it has sent stops growing, far short of
    the answer: only socket buffers and the window are ahead of the
    client), idemproxy's RSS stays flat; then every byte arrives."""
    p = proxy(ROUTES)
    n = 256 * MB
    tid = "slow-read"
    s = connect(p.port, rcvbuf=64 * 1024, timeout=30)
    got = [0]
    h = hashlib.sha256()

    def sink(mv):
        h.update(mv)
        got[0] += len(mv)
    try:
        s.sendall(b"GET /data?n=%d&id=%s HTTP/1.1\r\nHost: x\r\n\r\n" % (n, tid.encode()))
        r = Reader(s, bufsize=64 * 1024)
        a = r.head()
        assert a.status == 200
        with Watch(p.proc.pid) as w:
            # slow: 64 KiB every 20 ms
            while got[0] + len(r.buf) < 2 * MB:
                time.sleep(0.02)
                r.fill()
            got[0] += len(r.buf)
            h.update(r.buf)
            r.buf.clear()
            # stopped: wait until the upstream stops sending
            last, still_since = -1, time.monotonic()
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                sent = upstream.transfer(tid)["sent"]
                if sent != last:
                    last, still_since = sent, time.monotonic()
                elif time.monotonic() - still_since > 0.5:
                    break
                time.sleep(0.05)
            stalled_at = last
            print("\nslow reader: client read %.1f MB, upstream stopped at %.1f MB of %d MB; "
                  "idemproxy %s" % (got[0] / MB, stalled_at / MB, n // MB, w.summary()))
            assert time.monotonic() < deadline, "the upstream never stopped sending"
            assert stalled_at - got[0] < 64 * MB, "idemproxy read far ahead of the client"
            assert w.peak_kb - w.start_kb < GROWTH_KB, w.summary()
        r.exact(n - got[0], sink)
    finally:
        s.close()
    e = upstream.wait_transfer_end(tid)
    assert got[0] == n and e["done"] and h.hexdigest() == e["sha256"], e


@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_slow_writer_reaches_the_upstream_as_it_comes(proxy, upstream, framing):
    """A client sends 12 pieces of 256 KiB, each only once the one before
    has reached the upstream (within 2 s): a proxy that waited for the
    whole body would stall it at the first piece."""
    p = proxy(ROUTES)
    tid = "slow-write-" + framing
    waits = []

    def pace(i):
        if i == 0:
            return
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            e = upstream.transfer(tid)
            if e is not None and e["received"] >= i * 256 * 1024:
                waits.append(True)
                time.sleep(0.05)          # and a slow client it is
                return
            time.sleep(0.005)
        waits.append(False)
    a, sent = upload(p.port, "/data?id=" + tid, 12 * 256 * 1024,
                     chunked=framing == "chunked", pace=pace)
    assert waits == [True] * 11, waits
    assert a.status == 201 and json.loads(a.body)["sha256"] == sent, a.body


# ------------------------------------------------------------ protected, over max_store

@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_protected_answer_over_max_store_streamed_once(proxy, upstream, redis, framing):
    """An order whose answer is 100 MiB, max_store 1 MiB: the record is
    "unstored" before the answer's head reaches the client, all of it
    streams (checksum), RSS stays flat, the upstream ran it once, and a
    retry gets 409 RESPONSE_NOT_STORED."""
    p = proxy(ROUTES)
    n = 100 * MB
    k = "big-" + str(uuid.uuid4())
    tid = "big-" + framing
    path = "/v1/big?n=%d&framing=%s&id=%s" % (n, framing, tid)
    body = b'{"sku":"archive"}'
    head = ("POST %s HTTP/1.1\r\nHost: x\r\nIdempotency-Key: %s\r\nContent-Type: "
            "application/json\r\nContent-Length: %d\r\n\r\n" % (path, k, len(body))).encode()
    h = hashlib.sha256()
    s = connect(p.port, timeout=30)
    try:
        with Watch(p.proc.pid) as w:
            t0 = time.monotonic()
            s.sendall(head + body)
            r = Reader(s)
            a = r.head()
            names = redis.cmd("KEYS", "idem:*")
            state = redis.cmd("HGET", names[0], "state") if len(names) == 1 else None
            nbytes = [0]

            def sink(mv):
                h.update(mv)
                nbytes[0] += len(mv)
            r.body(a, sink)
            took = time.monotonic() - t0
    finally:
        s.close()
    figures("protected answer of 100 MiB, " + framing, n, took, w)
    assert a.status == 201 and a.header("Idempotent-Replayed") == "false", a.raw_head
    assert state == b"unstored", (names, state)
    e = upstream.wait_transfer_end(tid)
    assert nbytes[0] == n and h.hexdigest() == e["sha256"], e
    assert w.peak_kb - w.start_kb < GROWTH_KB + 2 * 1024, w.summary()
    retry = E2E.request(p.port, "POST", path, body, {"Idempotency-Key": k}, timeout=10)
    assert retry.status == 409 and retry.code() == "RESPONSE_NOT_STORED", retry
    assert [x["key"] for x in upstream.log("/v1/big")] == [k], "executed more than once"


# ------------------------------------------------------------ slowhttptest

SLOW = {
    # mode: (slowhttptest arguments for the URL u, how long it may run)
    "slowloris": lambda u: ["-H", "-i", "2", "-u", u + "/echo"],
    "slow_body": lambda u: ["-B", "-i", "2", "-s", "100000", "-u", u + "/echo"],
    # answers larger than the socket buffers, so idemproxy's window fills
    "slow_read": lambda u: ["-X", "-k", "2", "-n", "2", "-w", "16", "-y", "64", "-z", "32",
                            "-u", u + "/data?n=4000000"],
}
CONNS = 100


class Prober(threading.Thread):
    """A normal client: one GET every 100 ms on a new connection, timed."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port = port
        self.stop = threading.Event()
        self.results = []          # (seconds, status or the error)

    def run(self):
        i = 0
        while not self.stop.is_set():
            i += 1
            t0 = time.monotonic()
            try:
                st = E2E.request(self.port, "GET", "/echo?probe=%d" % i, timeout=5).status
            except Exception as e:   # noqa: an error is a result too
                st = repr(e)
            self.results.append((time.monotonic() - t0, st))
            self.stop.wait(0.1)


@pytest.mark.parametrize("mode", list(SLOW))
def test_slowhttptest(proxy, upstream, tmp_path, mode):
    """100 slow connections for a few seconds against 1 s timeouts: idemproxy
    cuts them (408 for a head or body that trickles, the connection
    closed for a reader that does not take the answer), its RSS stays
    bounded, a normal client is answered in under a second throughout,
    and afterwards nothing is left open on either side."""
    exe = shutil.which("slowhttptest")
    if exe is None:
        pytest.fail("slowhttptest is missing: run scripts/deps.sh")
    p = proxy(ROUTES, proxy_opts={"client_header_timeout": "1s", "client_body_timeout": "1s",
                                  "send_timeout": "1s"})
    pid = p.proc.pid
    base_fds = fd_count(pid)
    cut_before = requests_total(p.admin_port, "bad_request")
    prefix = str(tmp_path / "slow")
    fds = []                   # (seconds into the run, descriptors)
    probe = Prober(p.port)
    with Watch(pid) as w:
        probe.start()
        t0 = time.monotonic()
        run = subprocess.Popen([exe, "-c", str(CONNS), "-r", str(CONNS), "-l", "5", "-p", "2",
                                "-g", "-o", prefix] + SLOW[mode]("http://127.0.0.1:%d" % p.port),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            while run.poll() is None and time.monotonic() - t0 < 20:
                fds.append((time.monotonic() - t0, fd_count(pid)))
                time.sleep(0.1)
        finally:
            if run.poll() is None:
                run.kill()
            run.wait(5)
        probe.stop.set()
        probe.join(10)
    took = time.monotonic() - t0
    with open(prefix + ".csv") as f:
        rows = list(csv.DictReader(f))
    peak_fds = max(n for _, n in fds)
    print("\nslowhttptest %s: %.1f s, %d probes (slowest %.3f s), idemproxy %s, fds %d..%d; "
          "slowhttptest's last row %s" % (mode, took, len(probe.results),
                                         max(t for t, _ in probe.results), w.summary(),
                                         base_fds, peak_fds, rows[-1] if rows else None))
    assert peak_fds > base_fds + CONNS // 2, "the slow connections never got in"
    bad = [(t, st) for t, st in probe.results if st != 200 or t >= 1.0]
    assert len(probe.results) >= 20 and not bad, bad
    # a slow reader holds its window (128 KB) and what it pipelined, not
    # its answer: a few hundred KB a connection
    assert w.peak_kb < w.start_kb + CONNS * 384 + 8 * 1024, w.summary()
    if mode in ("slowloris", "slow_body"):
        # every trickling request was cut with a 408, counted as bad_request
        cut = requests_total(p.admin_port, "bad_request") - cut_before
        assert cut >= CONNS * 9 // 10, cut
        assert int(rows[-1]["Closed"]) >= CONNS * 9 // 10, rows[-1]
    else:
        # the readers that do not read were closed by send_timeout while
        # slowhttptest still held them open
        late = [n for t, n in fds if t > 3.5]
        assert late and min(late) <= base_fds + 5, fds
    assert upstream.wait_idle(10), upstream.stats()["open_paths"]
    n = wait_fds(pid, base_fds, 10)
    assert n <= base_fds, "idemproxy holds %d descriptors, %d before" % (n, base_fds)
