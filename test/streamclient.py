"""Client side of idemproxy's streaming tests: the streaming upstream
(streamup.py) as a process, raw-socket HTTP/1.1 clients that hash every
body byte as it arrives or leaves, and a watch on a process's memory (RSS)
and open file descriptors, sampled from /proc while a transfer runs."""
import hashlib
import http.client
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time

import pytest

from ports import HOST, free_port
import streamup

HERE = os.path.dirname(os.path.abspath(__file__))
PY = sys.executable or "/usr/bin/python3"
MB = 1024 * 1024


# ---------------------------------------------------------------- upstream

class StreamUpstream:
    """streamup.py in its own process on a free port."""

    def __init__(self):
        self.port = free_port()
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen([PY, os.path.join(HERE, "streamup.py"), str(self.port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("streamup.py exited at start")
            try:
                self.stats()
                return self
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError("streamup.py did not answer")

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None

    def stats(self):
        c = http.client.HTTPConnection(HOST, self.port, timeout=5)
        try:
            c.request("GET", "/__stats")
            return json.loads(c.getresponse().read())
        finally:
            c.close()

    def transfer(self, tid):
        return self.stats()["transfers"].get(tid)

    def log(self, path_prefix=None):
        return [e for e in self.stats()["log"]
                if path_prefix is None or e["path"].startswith(path_prefix)]

    def wait_transfer_end(self, tid, timeout=10.0):
        """The transfer's entry once it is done or aborted (None if not by then)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            e = self.transfer(tid)
            if e is not None and (e["done"] or e["aborted"]):
                return e
            time.sleep(0.02)
        return None

    def wait_idle(self, timeout=10.0):
        """True once no connection but the asking one is open on the upstream."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.stats()["open"] == 0:
                return True
            time.sleep(0.02)
        return False


@pytest.fixture(name="upstream")
def upstream_fixture():
    """The streaming upstream, as the `upstream` fixture: a module that
    imports this name runs against it (the e2e proxy factory points
    idemproxy at whatever `upstream` is)."""
    u = StreamUpstream().start()
    try:
        yield u
    finally:
        u.stop()


# ---------------------------------------------------------------- a process

def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


class Watch:
    """Samples a process's RSS every `every` seconds in a thread while in a
    `with` block: .start_kb, .peak_kb, .samples (kB)."""

    def __init__(self, pid, every=0.02):
        self.pid = pid
        self.every = every
        self.samples = []
        self.stop = threading.Event()
        self.thread = None
        self.start_kb = rss_kb(pid)

    def __enter__(self):
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def _run(self):
        while not self.stop.is_set():
            try:
                self.samples.append(rss_kb(self.pid))
            except OSError:
                return
            self.stop.wait(self.every)

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(5)
        return False

    @property
    def peak_kb(self):
        return max(self.samples + [self.start_kb])

    def summary(self):
        return "RSS start %.1f MB, peak %.1f MB over %d samples" % (
            self.start_kb / 1024, self.peak_kb / 1024, len(self.samples))


def wait_fds(pid, want, timeout=10.0):
    """The fd count once it is at most `want` (else the last count)."""
    deadline = time.monotonic() + timeout
    n = fd_count(pid)
    while n > want and time.monotonic() < deadline:
        time.sleep(0.02)
        n = fd_count(pid)
    return n


# ---------------------------------------------------------------- clients

class Answer:
    def __init__(self, status, headers, raw_head):
        self.status = status
        self.headers = headers      # [(name, value)]
        self.raw_head = raw_head
        self.nbytes = 0
        self.sha256 = None
        self.framing = None
        self.body = b""             # kept only when asked

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None


class Reader(streamup.SockReader):
    """A buffered reader over a socket, for answers."""

    def head(self, interim=False):
        """The next answer's head; interim (1xx but 101) ones are skipped
        unless asked for."""
        raw = b""
        while True:
            line = self.line()
            raw += line
            if line == b"\r\n":
                break
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = []
        for ln in lines[1:]:
            if ln:
                k, _, v = ln.partition(":")
                headers.append((k, v.strip()))
        a = Answer(status, headers, raw)
        if 100 <= status < 200 and status != 101 and not interim:
            return self.head()
        return a

    def body(self, a, sink, head_request=False, step=None):
        """Read a's body as its head frames it, each piece to sink(mv).
        step(): called between reads (a slow reader sleeps there)."""
        te = (a.header("Transfer-Encoding") or "").lower()
        cl = a.header("Content-Length")
        if head_request or a.status in (204, 304):
            a.framing = "none"
            return
        if "chunked" in te:
            a.framing = "chunked"
            while True:
                size = int(self.line().split(b";")[0], 16)
                if size == 0:
                    while self.line() != b"\r\n":
                        pass
                    return
                self.exact(size, sink, step)
                assert self.line() == b"\r\n", "chunk data not followed by CRLF"
        elif cl is not None:
            a.framing = "length"
            self.exact(int(cl), sink, step)
        else:
            a.framing = "close"
            while True:
                if self.buf:
                    sink(memoryview(self.buf))
                    self.buf.clear()
                if step:
                    step()
                try:
                    self.fill()
                except EOFError:
                    return


def connect(port, rcvbuf=None, timeout=30.0):
    s = socket.socket()
    if rcvbuf is not None:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(timeout)
    s.connect((HOST, port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def download(port, path, method="GET", headers=(), keep=False, step=None, rcvbuf=None,
             timeout=30.0, minor=1):
    """One request, its answer's body hashed as it comes. The Answer has
    nbytes, sha256, framing (and body when keep)."""
    s = connect(port, rcvbuf, timeout)
    try:
        req = "%s %s HTTP/1.%d\r\nHost: %s\r\n" % (method, path, minor, HOST)
        req += "".join("%s: %s\r\n" % kv for kv in headers) + "\r\n"
        s.sendall(req.encode())
        r = Reader(s)
        a = r.head()
        h = hashlib.sha256()
        kept = []

        def sink(mv):
            h.update(mv)
            a.nbytes += len(mv)
            if keep:
                kept.append(bytes(mv))
        r.body(a, sink, head_request=method == "HEAD", step=step)
        a.sha256 = h.hexdigest()
        a.body = b"".join(kept)
        return a
    finally:
        s.close()


def upload(port, path, n, chunked=False, seed="0", headers=(), timeout=60.0, method="POST",
           pace=None):
    """Send n bytes of streamup's pattern as the body (Content-Length or
    chunked, one 256 KiB piece per chunk); pace(i) is called before piece
    i. Returns (Answer with body, sha256 of what was sent)."""
    s = connect(port, None, timeout)
    try:
        req = "%s %s HTTP/1.1\r\nHost: %s\r\n" % (method, path, HOST)
        req += "".join("%s: %s\r\n" % kv for kv in headers)
        req += "Transfer-Encoding: chunked\r\n" if chunked else "Content-Length: %d\r\n" % n
        s.sendall((req + "\r\n").encode())
        h = hashlib.sha256()
        for i, (stamp, rest) in enumerate(streamup.pieces(n, seed)):
            if pace is not None:
                pace(i)
            h.update(stamp)
            h.update(rest)
            k = len(stamp) + len(rest)
            if chunked:
                s.sendmsg([b"%x\r\n" % k, stamp, rest, b"\r\n"])
            else:
                s.sendmsg([stamp, rest])
        if chunked:
            s.sendall(b"0\r\n\r\n")
        r = Reader(s)
        a = r.head()
        kept = []
        r.body(a, lambda mv: kept.append(bytes(mv)))
        a.body = b"".join(kept)
        return a, h.hexdigest()
    finally:
        s.close()


def peer_state(s, wait=0.5):
    """What the peer does next: "closed" (EOF), "reset", "data" (more
    bytes came) or "open" (nothing within wait seconds)."""
    s.settimeout(wait)
    try:
        d = s.recv(65536)
    except socket.timeout:
        return "open"
    except ConnectionResetError:
        return "reset"
    return "closed" if d == b"" else "data"


def exchange(port, data, answers=1, heads=(), timeout=5.0, wait=0.5):
    """Send raw bytes (or a list of parts, 50 ms apart) on a new
    connection, read `answers` answers (those whose index is in `heads`
    answer a HEAD: no body), then see what the peer does (peer_state).
    Returns ([Answer with body], state)."""
    s = connect(port, None, timeout)
    try:
        for i, part in enumerate([data] if isinstance(data, bytes) else data):
            if i:
                time.sleep(0.05)
            s.sendall(part)
        r = Reader(s)
        out = []
        for i in range(answers):
            a = r.head()
            kept = []
            r.body(a, lambda mv: kept.append(bytes(mv)), head_request=i in heads)
            a.body = b"".join(kept)
            out.append(a)
        if r.buf:
            return out, "data"
        return out, peer_state(s, wait)
    finally:
        s.close()


# ---------------------------------------------------------------- metrics

def requests_total(admin_port, outcome, route=None):
    """The sum of idemproxy_requests_total{outcome=...} (of one route, or all)."""
    c = http.client.HTTPConnection(HOST, admin_port, timeout=5)
    try:
        c.request("GET", "/metrics")
        text = c.getresponse().read().decode()
    finally:
        c.close()
    total = 0
    for m in re.finditer(r'^idemproxy_requests_total\{([^}]*)\} (\d+)$', text, re.M):
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
        if labels.get("outcome") == outcome and (route is None or labels.get("route") == route):
            total += int(m.group(2))
    return total


__all__ = ["StreamUpstream", "Watch", "rss_kb", "fd_count", "wait_fds", "download",
           "upload", "requests_total", "Reader", "connect", "exchange", "peer_state",
           "free_port", "upstream_fixture", "MB"]
