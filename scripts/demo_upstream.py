#!/usr/bin/env python3
"""Demo API behind `make run`: orders, payments, refunds, jobs.

POST /v1/orders    -> 201 {"orderId":"ord_N","status":"created","createdAt":...}
POST /v1/payments  -> 201 {"paymentId":"pay_N",...}
POST /v1/refunds   -> 201 {"refundId":"ref_N",...}
POST /jobs         -> 201 {"jobId":"job_N","status":"queued","createdAt":...}
GET  /healthz      -> 200
?sleep=SECONDS on any request sleeps first (to show an in-flight 409).
"""
import argparse
import datetime
import itertools
import json
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

    def _handle(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n > 0 else b""
        url = urlsplit(self.path)
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
        path, m = url.path, self.command
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
