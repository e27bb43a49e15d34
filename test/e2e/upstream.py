#!/usr/bin/env python3
"""Test upstream for the idemproxy end-to-end tests.

Every executed request (anything but /__log, /__reset and /__delay) is
appended to an in-memory log when its body has been read: method, path (with
query), Idempotency-Key header, body text, n (1, 2, ...; the answer's body
carries it), t (wall clock, seconds), status (what it answers; None for a
reset), headers (the request's, as [name, value] pairs).

Request headers steer the answer:
  X-Test-Sleep: 1.5       sleep before answering
  X-Test-Status: 500      answer status (default 201)
  X-Test-Body-Size: N     answer body of N bytes
  X-Test-Reset: 1         close the socket without answering
  X-Test-Hop-Out: NAME    answer with "Connection: keep-alive, NAME", a
                          NAME header and a Keep-Alive header (hop-by-hop)
GET /__log returns the log as JSON; POST /__reset clears it; POST /__delay
with {"sleep": S} adds S seconds before every answer (0 to stop).

Run: python3 upstream.py PORT [--idle-timeout S]
  --idle-timeout S   close a keep-alive connection idle for S seconds (the
                     default keeps it open until the peer closes it)
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
DELAY = [0.0]


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
        if self.path == "/__delay" and self.command == "POST":
            DELAY[0] = float(json.loads(body or b"{}").get("sleep") or 0)
            return self._send(200, b"{}", [("Content-Type", "application/json")])
        text = body.decode("utf-8", "replace")
        reset = bool(self.headers.get("X-Test-Reset"))
        with LOCK:
            COUNTER[0] += 1
            n = COUNTER[0]
            LOG.append({"method": self.command, "path": self.path,
                        "key": self.headers.get("Idempotency-Key"),
                        "body": text, "n": n, "t": time.time(),
                        "status": None if reset else int(self.headers.get("X-Test-Status") or 201),
                        "headers": [[k, v] for k, v in self.headers.items()]})
        sleep = float(self.headers.get("X-Test-Sleep") or 0) + DELAY[0]
        if sleep > 0:
            time.sleep(sleep)
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
        extra = []
        hop = self.headers.get("X-Test-Hop-Out")
        if hop:
            extra = [("Connection", "keep-alive, " + hop), (hop, "hop"),
                     ("Keep-Alive", "timeout=30")]
        self._send(status, payload, [("Content-Type", ctype),
                                     ("Location", "/x/%d" % n),
                                     ("X-Upstream", "yes"),
                                     ("Set-Cookie", "s=1")] + extra)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 512


class IdleCloseHandler(Handler):
    """Closes a keep-alive connection after `timeout` idle seconds (the
    socket timeout ends handle_one_request's wait for the next request)."""
    timeout = None


def make_server(port, host="127.0.0.1", idle_timeout=None):
    handler = Handler
    if idle_timeout is not None:
        handler = type("Idle", (IdleCloseHandler,), {"timeout": idle_timeout})
    return Server((host, port), handler)


def main():
    args = sys.argv[1:]
    idle = None
    if "--idle-timeout" in args:
        i = args.index("--idle-timeout")
        idle = float(args[i + 1])
        del args[i:i + 2]
    port = int(args[0]) if args else 9100
    srv = make_server(port, idle_timeout=idle)
    try:
        srv.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
