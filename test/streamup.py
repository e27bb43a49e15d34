#!/usr/bin/env python3
"""A streaming test upstream for idemproxy's pass-through tests: large
bodies both ways with a checksum of every byte, server-sent events, a
WebSocket echo, CORS for a browser page, and a live account of what it
sent, received and executed. Run as its own process (so its sending and
hashing do not share a GIL with the test's client):

    python3 streamup.py PORT

Bodies are made of 256 KiB pieces: piece i is its index (8 bytes, big
endian) followed by the rest of a random 256 KiB block drawn from `seed`,
so a lost, repeated or reordered piece changes the checksum (sha256) even
where the length is right. A transfer is named by the request's `id`
query parameter; its entry is updated as bytes move, so a test can watch
one while it runs.

  GET|HEAD /data?n=N&framing=length|chunked|close&id=I&seed=S
        N bytes (answer framed as asked: Content-Length, chunked, or read
        to the close)
  POST|PUT /data?id=I  the body read as it comes (Content-Length or
        chunked), hashed; 201 {"bytes", "sha256", "framing"}; &stall=S
        &stall_at=B: reading stops for S seconds once B bytes are in
  POST /v1/orders...   an order: 201 {"orderId", "n"}, counted (with its
        Idempotency-Key); /v1/big?n=N&framing=F answers N bytes instead
  OPTIONS any          a CORS preflight: 204 allowing the origin, POST,
        Content-Type and Idempotency-Key
  GET /events?n=N&interval=S&id=I   server-sent events, chunked, one every
        S seconds, each carrying the time it was sent
  GET /ws              a WebSocket (python3-websockets' own protocol code,
        sans-I/O) echoing every text and binary message
  any other            /echo: 200 {"method", "path", "headers", "bytes",
        "sha256"} of what arrived
  GET /__stats         {"transfers", "log", "open", "ws", "events", "heads"} as
        JSON ("heads": request heads read, but those of /__ requests)
  POST /__reset        forgets it all

Every answer but a preflight carries Access-Control-Allow-Origin (the
request's Origin, or *) and Access-Control-Expose-Headers: Location.
"""
import hashlib
import json
import random
import socket
import sys
import threading
import time
from urllib.parse import parse_qs, urlsplit

PIECE = 256 * 1024
LOCK = threading.Lock()
STATE = {"transfers": {}, "log": [], "ws": [], "events": {}}
OPEN = {}                   # connection id -> path of its last request
COUNT = [0, 0, 0]           # connections accepted, orders executed, heads read
BASES = {}


def base_block(seed):
    with LOCK:
        b = BASES.get(seed)
        if b is None:
            b = BASES[seed] = random.Random(seed).randbytes(PIECE)
        return b


def pieces(n, seed):
    """(stamp, memoryview) pairs that make up n bytes."""
    base = memoryview(base_block(seed))
    i = 0
    while n > 0:
        k = min(n, PIECE)
        stamp = i.to_bytes(8, "big")
        if k <= 8:
            yield stamp[:k], base[:0]
        else:
            yield stamp, base[8:k]
        n -= k
        i += 1


def expected_digest(n, seed="0"):
    """The sha256 of what /data sends for n bytes (what a client checks)."""
    h = hashlib.sha256()
    for stamp, rest in pieces(n, seed):
        h.update(stamp)
        h.update(rest)
    return h.hexdigest()


class SockReader:
    """A buffered reader over a socket (the clients' Reader is one too)."""

    def __init__(self, sock, bufsize=1 << 20):
        self.s = sock
        self.buf = bytearray()
        self.rbuf = bytearray(bufsize)

    def fill(self):
        """Read what the socket has into buf; EOFError at its end."""
        n = self.s.recv_into(self.rbuf)
        if n == 0:
            raise EOFError("closed by the peer")
        self.buf += memoryview(self.rbuf)[:n]
        return n

    def line(self, limit=65536):
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                out = bytes(self.buf[:i + 1])
                del self.buf[:i + 1]
                return out
            if len(self.buf) > limit:
                raise ValueError("line too long")
            self.fill()

    def exact(self, n, sink, step=None):
        """The next n bytes, each piece to sink(mv); step() before a read."""
        while n > 0:
            if not self.buf:
                if step:
                    step()
                self.fill()
            k = min(n, len(self.buf))
            sink(memoryview(self.buf)[:k])
            del self.buf[:k]
            n -= k


class Conn(SockReader):
    """One client connection of the upstream."""

    def __init__(self, sock, cid):
        super().__init__(sock)
        self.cid = cid

    def head(self):
        """(method, target, version, [(name, value)]) or None at EOF."""
        try:
            line = self.line()
        except EOFError:
            return None
        while line in (b"\r\n", b"\n"):
            line = self.line()
        method, target, version = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
        headers = []
        while True:
            h = self.line()
            if h in (b"\r\n", b"\n"):
                break
            k, _, v = h.decode("latin-1").partition(":")
            headers.append((k.strip(), v.strip()))
        return method, target, version, headers

    def body(self, headers, sink):
        """Read the body as its head frames it, each piece to sink(mv)."""
        te = header(headers, "Transfer-Encoding") or ""
        if "chunked" in te.lower():
            while True:
                size = int(self.line().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.line() not in (b"\r\n", b"\n"):
                        pass
                    return "chunked"
                self.exact(size, sink)
                self.line()
        n = int(header(headers, "Content-Length") or 0)
        self.exact(n, sink)
        return "length"


def header(headers, name):
    for k, v in headers:
        if k.lower() == name.lower():
            return v
    return None


def send_answer(c, status, body=b"", headers=(), head_only=False, ctype="application/json"):
    reason = {200: "OK", 201: "Created", 204: "No Content", 404: "Not Found"}.get(status, "X")
    out = ["HTTP/1.1 %d %s" % (status, reason), "Content-Type: " + ctype]
    out += ["%s: %s" % kv for kv in headers]
    if status != 204:
        out.append("Content-Length: %d" % len(body))
    data = ("\r\n".join(out) + "\r\n\r\n").encode("latin-1")
    c.s.sendall(data if head_only else data + body)


def cors(req_headers):
    return [("Access-Control-Allow-Origin", header(req_headers, "Origin") or "*"),
            ("Access-Control-Expose-Headers", "Location")]


def new_transfer(tid, **kw):
    e = {"sent": 0, "received": 0, "done": False, "aborted": False, "error": None,
         "sha256": None, "t0": time.time(), "t1": None}
    e.update(kw)
    with LOCK:
        STATE["transfers"][tid] = e
    return e


def end_transfer(e, h=None, err=None):
    with LOCK:
        e["t1"] = time.time()
        if h is not None:
            e["sha256"] = h.hexdigest()
        if err is None:
            e["done"] = True
        else:
            e["aborted"] = True
            e["error"] = err


def serve_data(c, method, q, req_headers):
    """GET|HEAD /data and POST /v1/big: N bytes framed as asked."""
    n = int(q.get("n", ["0"])[0])
    framing = q.get("framing", ["length"])[0]
    seed = q.get("seed", ["0"])[0]
    tid = q.get("id", ["data-%d" % c.cid])[0]
    e = new_transfer(tid, kind="download", n=n, framing=framing)
    hdr = ["HTTP/1.1 %s" % ("201 Created" if method == "POST" else "200 OK"),
           "Content-Type: application/octet-stream"]
    hdr += ["%s: %s" % kv for kv in cors(req_headers)]
    if framing == "length":
        hdr.append("Content-Length: %d" % n)
    elif framing == "chunked":
        hdr.append("Transfer-Encoding: chunked")
    else:
        hdr.append("Connection: close")
    c.s.sendall(("\r\n".join(hdr) + "\r\n\r\n").encode())
    if method == "HEAD":
        end_transfer(e)
        return framing != "close"
    h = hashlib.sha256()
    try:
        for stamp, rest in pieces(n, seed):
            h.update(stamp)
            h.update(rest)
            k = len(stamp) + len(rest)
            if framing == "chunked":
                c.s.sendmsg([b"%x\r\n" % k, stamp, rest, b"\r\n"])
            else:
                c.s.sendmsg([stamp, rest])
            # (sendmsg on a blocking socket sends it all or raises)
            with LOCK:
                e["sent"] += k
        if framing == "chunked":
            c.s.sendall(b"0\r\n\r\n")
    except OSError as x:
        end_transfer(e, err=type(x).__name__)
        return False
    end_transfer(e, h)
    return framing != "close"


def serve_upload(c, method, q, req_headers):
    tid = q.get("id", ["upload-%d" % c.cid])[0]
    e = new_transfer(tid, kind="upload", length=header(req_headers, "Content-Length"))
    h = hashlib.sha256()
    stall = float(q.get("stall", ["0"])[0])      # a slow reader: stop reading
    stall_at = int(q.get("stall_at", ["0"])[0])  # for stall s after stall_at bytes

    def sink(mv):
        nonlocal stall
        h.update(mv)
        with LOCK:
            e["received"] += len(mv)
            now = e["received"]
        if stall and now >= stall_at:
            time.sleep(stall)
            stall = 0
    try:
        framing = c.body(req_headers, sink)
    except (OSError, EOFError, ValueError) as x:
        end_transfer(e, err=type(x).__name__)
        return False
    end_transfer(e, h)
    e["framing"] = framing
    send_answer(c, 201, json.dumps({"bytes": e["received"], "sha256": e["sha256"],
                                    "framing": framing}).encode(), cors(req_headers))
    return True


def serve_events(c, method, q, req_headers):
    n = int(q.get("n", ["5"])[0])
    interval = float(q.get("interval", ["0.2"])[0])
    tid = q.get("id", ["events-%d" % c.cid])[0]
    sent = []
    with LOCK:
        STATE["events"][tid] = sent
    hdr = ["HTTP/1.1 200 OK", "Content-Type: text/event-stream", "Cache-Control: no-cache",
           "Transfer-Encoding: chunked"]
    hdr += ["%s: %s" % kv for kv in cors(req_headers)]
    c.s.sendall(("\r\n".join(hdr) + "\r\n\r\n").encode())
    try:
        for i in range(1, n + 1):
            if i > 1:
                time.sleep(interval)
            t = time.time()
            ev = b"id: %d\nevent: tick\ndata: {\"i\": %d, \"t\": %.6f}\n\n" % (i, i, t)
            c.s.sendall(b"%x\r\n%s\r\n" % (len(ev), ev))
            with LOCK:
                sent.append(t)
        c.s.sendall(b"0\r\n\r\n")
    except OSError:
        return False
    return True


def serve_ws(c, target, version, req_headers):
    """Hand the connection to websockets' sans-I/O server protocol: the
    handshake is checked and answered by it, every message echoed."""
    from websockets.frames import OP_BINARY, OP_CONT, OP_TEXT
    from websockets.server import ServerConnection
    ws = ServerConnection(max_size=None)
    head = "GET %s %s\r\n" % (target, version)
    head += "".join("%s: %s\r\n" % kv for kv in req_headers) + "\r\n"
    ws.receive_data(head.encode("latin-1") + bytes(c.buf))
    c.buf.clear()
    entry = {"messages": [], "close_code": None, "clean": False, "t1": None}
    with LOCK:
        STATE["ws"].append(entry)
    parts, op = [], None
    try:
        while True:
            for ev in ws.events_received():
                if hasattr(ev, "path"):                 # the handshake request
                    ws.send_response(ws.accept(ev))
                    continue
                if ev.opcode in (OP_TEXT, OP_BINARY):
                    op, parts = ev.opcode, [ev.data]
                elif ev.opcode == OP_CONT:
                    parts.append(ev.data)
                else:
                    continue
                if ev.fin:
                    data = b"".join(parts)
                    with LOCK:
                        entry["messages"].append(
                            ["text" if op == OP_TEXT else "binary", len(data),
                             hashlib.sha256(data).hexdigest()])
                    if op == OP_TEXT:
                        ws.send_text(data)
                    else:
                        ws.send_binary(data)
            for out in ws.data_to_send():
                if out == b"":
                    c.s.shutdown(socket.SHUT_WR)       # the close handshake is done
                else:
                    c.s.sendall(out)
            if ws.state.name == "CLOSED" or (ws.eof_sent and ws.close_rcvd is not None):
                entry["close_code"] = ws.close_rcvd.code if ws.close_rcvd else None
                entry["clean"] = True
                # wait for the client's close of TCP (bounded)
                c.s.settimeout(5)
                try:
                    while c.s.recv(65536):
                        pass
                except OSError:
                    pass
                return False
            data = c.s.recv(1 << 20)
            if not data:
                ws.receive_eof()
            else:
                ws.receive_data(data)
    except (OSError, EOFError):
        return False
    finally:
        entry["t1"] = time.time()


def serve_echo(c, method, target, req_headers):
    h = hashlib.sha256()
    got = [0]

    def sink(mv):
        h.update(mv)
        got[0] += len(mv)
    framing = c.body(req_headers, sink)
    info = {"method": method, "path": target, "headers": req_headers, "bytes": got[0],
            "sha256": h.hexdigest(), "framing": framing, "conn": c.cid}
    return info


def handle(c):
    while True:
        got = c.head()
        if got is None:
            return
        method, target, version, req_headers = got
        url = urlsplit(target)
        q = parse_qs(url.query)
        path = url.path
        with LOCK:
            OPEN[c.cid] = path
            if not path.startswith("/__"):
                COUNT[2] += 1
        if path == "/__stats":
            with LOCK:
                others = [p for k, p in OPEN.items() if k != c.cid]
                data = json.dumps(dict(STATE, open=len(others), open_paths=others,
                                       accepted=COUNT[0] - 1, heads=COUNT[2])).encode()
            send_answer(c, 200, data)
            continue
        if path == "/__reset":
            c.body(req_headers, lambda mv: None)
            with LOCK:
                STATE["transfers"].clear()
                STATE["log"].clear()
                STATE["ws"].clear()
                STATE["events"].clear()
            send_answer(c, 200, b"{}")
            continue
        streamed = {("/data", "GET"): serve_data, ("/data", "HEAD"): serve_data,
                    ("/data", "POST"): serve_upload, ("/data", "PUT"): serve_upload,
                    ("/events", "GET"): serve_events}.get((path, method))
        ws = path == "/ws" and (header(req_headers, "Upgrade") or "").lower() == "websocket"
        if method == "OPTIONS" or ws or streamed:
            # logged at its start: the body (if any) is the handler's
            with LOCK:
                STATE["log"].append({"method": method, "path": target, "conn": c.cid,
                                     "headers": req_headers})
        if ws:
            serve_ws(c, target, version, req_headers)
            return
        if streamed:
            if not streamed(c, method, q, req_headers):
                return
            continue
        if method == "OPTIONS":
            c.body(req_headers, lambda mv: None)
            send_answer(c, 204, b"", [
                ("Access-Control-Allow-Origin", header(req_headers, "Origin") or "*"),
                ("Access-Control-Allow-Methods", "GET, POST"),
                ("Access-Control-Allow-Headers", "Content-Type, Idempotency-Key"),
                ("Access-Control-Max-Age", "0")])
            continue
        info = serve_echo(c, method, target, req_headers)
        info["key"] = header(req_headers, "Idempotency-Key")
        with LOCK:
            STATE["log"].append(info)
        if method == "POST" and path == "/v1/big":
            if not serve_data(c, method, q, req_headers):
                return
            continue
        if method == "POST" and path.startswith("/v1/orders"):
            with LOCK:
                COUNT[1] += 1
                n = COUNT[1]
            info["order"] = n
            send_answer(c, 201, json.dumps({"orderId": "ord_%d" % n, "n": n}).encode(),
                        [("Location", "/v1/orders/ord_%d" % n)] + cors(req_headers))
            continue
        send_answer(c, 200, json.dumps(info).encode(), cors(req_headers),
                    head_only=method == "HEAD")


def serve(c):
    try:
        handle(c)
    except (OSError, EOFError, ValueError):
        pass
    finally:
        with LOCK:
            OPEN.pop(c.cid, None)
        try:
            c.s.close()
        except OSError:
            pass


def main():
    port = int(sys.argv[1])
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", port))
    ls.listen(512)
    while True:
        s, _ = ls.accept()
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with LOCK:
            COUNT[0] += 1
            cid = COUNT[0]
            OPEN[cid] = None
        threading.Thread(target=serve, args=(Conn(s, cid),), daemon=True).start()


if __name__ == "__main__":
    main()
