"""A scripted raw-socket upstream for the end-to-end tests of idemproxy's
own HTTP/1.1 client (proxy/upstream.c).

Python's http.server (upstream.py) only ever answers with Content-Length
framing; this one answers each request with the exact bytes a test chose,
so chunked, close-delimited, interim (1xx), folded, malformed, oversized
and trickled answers can be sent. It runs in the test process: a thread
accepts on 127.0.0.1, one thread per connection reads requests one after
the other (the proxy always frames its request bodies with a
Content-Length) and plays the script the request names:

    up.script("name", b"HTTP/1.1 201 Created\\r\\n...", close=False)

picked by the request's X-Script header ("default" without one: a 201
with a small JSON body). A script is a list of steps: bytes are sent as
they are, a float sleeps that many seconds, Trickle(data, delay) sends
data one byte per TCP segment. close=True closes the connection after the
steps (the end of a close-delimited body, or a cut); otherwise the next
request is read from the same connection. early=True answers as soon as
the request's head is in, without reading its body, and closes (as a
server refusing an upload does; with the body unread the close is a
reset). close="with-answer" corks the socket (TCP_CORK) so that the
answer's last bytes and the close leave in one segment: the proxy reads
the answer and the upstream's FIN together.

Every request is recorded when its body has been read, before it is
answered (so a test that got an answer may count it): the connection it
came on (1, 2, ... in accept order), request line, headers in order, body,
and its raw bytes."""
import socket
import threading
import time

from conftest import HeaderList
from ports import HOST, free_port

IO_TIMEOUT = 10.0          # no read or write on an upstream socket waits longer


class Trickle:
    """Send data one byte at a time, each in its own TCP segment."""

    def __init__(self, data, delay=0.001):
        self.data = data
        self.delay = delay


class Received(HeaderList):
    """One request as the upstream read it."""

    def __init__(self, conn, raw_head, body):
        self.conn = conn
        self.raw = raw_head + body
        self.body = body
        lines = raw_head[:-4].split(b"\r\n")
        self.request_line = lines[0].decode("latin-1")
        self.method, self.target, self.version = self.request_line.split(" ", 2)
        self.headers = []
        for line in lines[1:]:
            name, sep, value = line.decode("latin-1").partition(":")
            assert sep, "request header line without a colon: %r" % line
            self.headers.append((name, value.strip(" \t")))

    def names(self):
        return [k.lower() for k, _ in self.headers]

    def __repr__(self):
        return "Received(conn=%d, %r, %r)" % (self.conn, self.request_line, self.raw[:300])


DEFAULT_ANSWER = (b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 11\r\n\r\n{\"ok\":true}")


class RawUpstream:
    def __init__(self):
        self.port = free_port()
        self.lock = threading.Lock()
        self.scripts = {"default": ([DEFAULT_ANSWER], False, False)}
        self.corked = set()       # scripts whose answer and FIN go together
        self.received = []
        self.errors = []           # what the connection threads could not do
        self.n_conns = 0
        self.socks = set()
        self.threads = []
        self.lsock = None
        self.stopping = False

    # ---- for the tests

    def script(self, name, *steps, close=False, early=False):
        with self.lock:
            self.scripts[name] = (list(steps), close or early, early)
            if close == "with-answer":
                self.corked.add(name)

    def requests(self, script=None, key=None):
        """The requests received (those that named script, or carried this
        Idempotency-Key), oldest first."""
        with self.lock:
            out = list(self.received)
        if script is not None:
            out = [r for r in out if (r.header("X-Script") or "default") == script]
        if key is not None:
            out = [r for r in out if r.header("Idempotency-Key") == key]
        return out

    def count(self, script=None, key=None):
        return len(self.requests(script, key))

    # ---- the server

    def start(self):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((HOST, self.port))
        s.listen(64)
        s.settimeout(0.1)
        self.lsock = s
        t = threading.Thread(target=self._accept_loop, name="rawupstream-accept", daemon=True)
        t.start()
        self.threads.append(t)

    def stop(self):
        self.stopping = True
        with self.lock:
            socks = list(self.socks)
        for c in socks:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in list(self.threads):
            t.join(5)
        if self.lsock is not None:
            self.lsock.close()
            self.lsock = None

    def _accept_loop(self):
        while not self.stopping:
            try:
                c, _ = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            c.settimeout(IO_TIMEOUT)
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self.lock:
                self.n_conns += 1
                cid = self.n_conns
                self.socks.add(c)
            t = threading.Thread(target=self._serve, args=(c, cid),
                                 name="rawupstream-%d" % cid, daemon=True)
            self.threads.append(t)
            t.start()

    def _serve(self, c, cid):
        buf = b""
        try:
            while not self.stopping:
                got = self._read_head(c, buf)
                if got is None:
                    return              # the proxy closed the connection
                raw_head, buf = got
                name = Received(cid, raw_head, b"").header("X-Script") or "default"
                with self.lock:
                    steps, close, early = self.scripts.get(name, (None, True, False))
                if not early:
                    body, buf = self._read_body(c, raw_head, buf)
                else:
                    body = b""
                with self.lock:
                    self.received.append(Received(cid, raw_head, body))
                if steps is None:
                    self.errors.append("no script %r" % name)
                    return
                if name in self.corked:
                    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
                self._play(c, steps)
                if close:
                    return
        except OSError as e:
            # the proxy may close before a script is played out (an answer
            # it refused half way); a test that cares looks at the answer
            self.errors.append("conn %d: %r" % (cid, e))
        finally:
            with self.lock:
                self.socks.discard(c)
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()

    @staticmethod
    def _read_head(c, buf):
        """(raw head with its empty line, what follows) or None at EOF."""
        while b"\r\n\r\n" not in buf:
            d = c.recv(65536)
            if not d:
                return None
            buf += d
        i = buf.index(b"\r\n\r\n") + 4
        return buf[:i], buf[i:]

    @staticmethod
    def _read_body(c, head, buf):
        """(body, what follows): the proxy frames bodies with a
        Content-Length only; with a Transfer-Encoding (a test asserts there
        is none) the body is left unread."""
        n = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                n = int(value.strip())
            if name.strip().lower() == b"transfer-encoding":
                n = 0
                break
        while len(buf) < n:
            d = c.recv(65536)
            if not d:
                break
            buf += d
        return buf[:n], buf[n:]

    @staticmethod
    def _play(c, steps):
        for step in steps:
            if isinstance(step, (bytes, bytearray)):
                c.sendall(step)
            elif isinstance(step, (int, float)):
                time.sleep(step)
            elif isinstance(step, Trickle):
                for i in range(len(step.data)):
                    c.sendall(step.data[i:i + 1])
                    time.sleep(step.delay)
            else:
                raise TypeError("bad script step %r" % (step,))
