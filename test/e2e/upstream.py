#!/usr/bin/env python3
"""Test upstream for the idemproxy end-to-end tests.

Every executed request (anything but /__log and /__reset) is appended to an
in-memory log: method, path (with query), Idempotency-Key header, body text.

Request headers steer the answer:
  X-Test-Sleep: 1.5       sleep before answering
  X-Test-Status: 500      answer status (default 201)
  X-Test-Body-Size: N     answer body of N bytes
  X-Test-Reset: 1         close the socket without answering
GET /__log returns the log as JSON; POST /__reset clears it.

Run: python3 upstream.py PORT
"""
import json
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
LOG = []
COUNTER = [0]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet
        pass

    def _read_body(self):
        te = self.headers.get("Transfer-Encoding", "")
        if "chunked" in te.lower():
            out = b""
            while True:
                line = self.rfile.readline()
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def _send(self, status, body, headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.wfile.flush()

    def _handle(self):
        body = self._read_body()
        if self.path == "/__log":
            with LOCK:
                data = json.dumps(LOG).encode()
            return self._send(200, data, [("Content-Type", "application/json")])
        if self.path == "/__reset" and self.command == "POST":
            with LOCK:
                LOG.clear()
            return self._send(200, b"{}", [("Content-Type", "application/json")])
        text = body.decode("utf-8", "replace")
        with LOCK:
            COUNTER[0] += 1
            n = COUNTER[0]
            LOG.append({"method": self.command, "path": self.path,
                        "key": self.headers.get("Idempotency-Key"),
                        "body": text, "n": n})
        sleep = self.headers.get("X-Test-Sleep")
        if sleep:
            time.sleep(float(sleep))
        if self.headers.get("X-Test-Reset"):
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.close_connection = True
            return
        status = int(self.headers.get("X-Test-Status") or 201)
        size = self.headers.get("X-Test-Body-Size")
        if size is not None:
            payload = b"x" * int(size)
            ctype = "application/octet-stream"
        else:
            payload = json.dumps({"n": n, "path": self.path, "body": text}).encode()
            ctype = "application/json"
        self._send(status, payload, [("Content-Type", ctype),
                                     ("Location", "/x/%d" % n),
                                     ("X-Upstream", "yes"),
                                     ("Set-Cookie", "s=1")])

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 512


def make_server(port, host="127.0.0.1"):
    return Server((host, port), Handler)


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 9100
    srv = make_server(port)
    try:
        srv.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
