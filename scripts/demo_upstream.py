#!/usr/bin/env python3
"""Demo API behind `make run`: orders, payments, refunds, jobs.

POST /v1/orders    -> 201 {"orderId":"ord_N","status":"created","createdAt":...}
POST /v1/payments  -> 201 {"paymentId":"pay_N",...}
POST /v1/refunds   -> 201 {"refundId":"ref_N",...}
POST /jobs         -> 201 {"jobId":"job_N","status":"queued","createdAt":...}
GET  /healthz      -> 200
GET  /v1/export?mb=N  -> N MB of CSV rows, streamed with chunked encoding
GET  /v1/events?n=N   -> server-sent events, one a second (default 5)
POST /v1/uploads   -> 201 {"bytes":N,"sha256":...} of the body, read as it comes
GET  /v1/ws        -> a WebSocket (Upgrade) that echoes text messages
?sleep=SECONDS on any request sleeps first (to show an in-flight 409).
"""
import argparse
import base64
import datetime
import hashlib
import itertools
import json
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

_counter = itertools.count(1)
_lock = threading.Lock()


def next_id():
    with _lock:
        return next(_counter)


def now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "demo-upstream/1"

    def log_message(self, fmt, *args):
        pass

    def _reply(self, status, obj, headers=()):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        sys.stderr.write("%s %s %s -> %d key=%s\n" % (
            now(), self.command, self.path, status,
            self.headers.get("Idempotency-Key", "-")))
        sys.stderr.flush()

    def _chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def _export(self, mb):
        """Rows of CSV, chunked, about mb MB in all."""
        self.send_response(200)
        self.send_header("Content-Type", "text/csv")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        row = b"%08d,order,book,1,12.50,EUR,created\n"
        block = b"".join(row % i for i in range(2048))      # 80 KB
        left = mb * 1024 * 1024
        while left > 0:
            part = block[:left]
            self._chunk(part)
            left -= len(part)
        self.wfile.write(b"0\r\n\r\n")

    def _events(self, n):
        """n server-sent events, one a second, each sent when it happens."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for i in range(1, n + 1):
            self._chunk(b"id: %d\nevent: tick\ndata: {\"n\": %d, \"at\": \"%s\"}\n\n"
                        % (i, i, now().encode()))
            self.wfile.flush()
            if i < n:
                time.sleep(1)
        self.wfile.write(b"0\r\n\r\n")

    def _upload(self):
        """The body read as it comes (Content-Length or chunked), hashed."""
        h, total = hashlib.sha256(), 0
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                data = self.rfile.read(size)
                self.rfile.readline()
                h.update(data)
                total += len(data)
        else:
            left = int(self.headers.get("Content-Length") or 0)
            while left > 0:
                data = self.rfile.read(min(left, 1 << 16))
                if not data:
                    break
                h.update(data)
                total += len(data)
                left -= len(data)
        return self._reply(201, {"bytes": total, "sha256": h.hexdigest()})

    def _websocket(self):
        """RFC 6455, text frames echoed back, until the client closes."""
        k = self.headers.get("Sec-WebSocket-Key", "")
        accept = base64.b64encode(hashlib.sha1(
            (k + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        self.end_headers()
        self.wfile.flush()
        while True:
            head = self.rfile.read(2)
            if len(head) < 2:
                return
            op, n = head[0] & 0x0F, head[1] & 0x7F
            if n == 126:
                n = struct.unpack("!H", self.rfile.read(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", self.rfile.read(8))[0]
            mask = self.rfile.read(4) if head[1] & 0x80 else b"\0\0\0\0"
            data = bytes(b ^ mask[i % 4] for i, b in enumerate(self.rfile.read(n)))
            if op == 8:                       # close: answer it, end
                self.wfile.write(b"\x88\x00")
                return
            if op in (1, 2):
                out = data
                hdr = bytes([0x80 | op])
                if len(out) < 126:
                    hdr += bytes([len(out)])
                elif len(out) < 65536:
                    hdr += bytes([126]) + struct.pack("!H", len(out))
                else:
                    hdr += bytes([127]) + struct.pack("!Q", len(out))
                self.wfile.write(hdr + out)
                self.wfile.flush()

    def _handle(self):
        url = urlsplit(self.path)
        q = parse_qs(url.query)
        path, m = url.path, self.command
        try:
            if m == "GET" and path == "/v1/export":
                return self._export(max(0, min(int(q.get("mb", ["20"])[0]), 4096)))
            if m == "GET" and path == "/v1/events":
                return self._events(max(1, min(int(q.get("n", ["5"])[0]), 3600)))
            if m == "POST" and path == "/v1/uploads":
                return self._upload()
            if m == "GET" and path == "/v1/ws" and \
                    self.headers.get("Upgrade", "").lower() == "websocket":
                self.close_connection = True
                return self._websocket()
        except (BrokenPipeError, ConnectionResetError, ValueError):
            self.close_connection = True
            return None
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n > 0 else b""
        q = parse_qs(url.query)
        if "sleep" in q:
            try:
                time.sleep(min(float(q["sleep"][0]), 120.0))
            except ValueError:
                pass
        try:
            req = json.loads(raw) if raw else {}
        except ValueError:
            req = {}
        if not isinstance(req, dict):
            req = {}
        if m == "GET" and path == "/healthz":
            return self._reply(200, {"status": "ok"})
        if m == "POST" and path == "/v1/orders":
            oid = "ord_%d" % next_id()
            return self._reply(201, {"orderId": oid, "status": "created",
                                     "createdAt": now()},
                               [("Location", "/v1/orders/" + oid)])
        if m == "POST" and path == "/v1/payments":
            pid = "pay_%d" % next_id()
            return self._reply(201, {"paymentId": pid, "status": "captured",
                                     "amount": req.get("amount"),
                                     "createdAt": now()},
                               [("Location", "/v1/payments/" + pid)])
        if m == "POST" and path == "/v1/refunds":
            rid = "ref_%d" % next_id()
            return self._reply(201, {"refundId": rid, "status": "pending",
                                     "createdAt": now()},
                               [("Location", "/v1/refunds/" + rid)])
        if m == "POST" and path == "/jobs":
            jid = "job_%d" % next_id()
            return self._reply(201, {"jobId": jid, "status": "queued",
                                     "tenantId": req.get("tenantId"),
                                     "createdAt": now()},
                               [("Location", "/jobs/" + jid)])
        return self._reply(404, {"error": {"code": "NOT_FOUND",
                                           "message": "no such endpoint"}})

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=9000)
    ap.add_argument("--host", default="127.0.0.1")
    a = ap.parse_args()
    srv = ThreadingHTTPServer((a.host, a.port), Handler)
    srv.daemon_threads = True
    sys.stderr.write("demo upstream on http://%s:%d\n" % (a.host, a.port))
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
