"""A real browser through idemproxy: Debian's chromium, headless, loads a
page from one origin (a small static server of this test) that calls the
API through idemproxy on another origin (another port): it posts an order
twice with fetch() and one Idempotency-Key (the CORS preflight passes
through; Idempotent-Replayed is readable because idemproxy adds it to the
upstream's Access-Control-Expose-Headers), opens an EventSource and a
WebSocket through idemproxy, and posts what it saw back to the static
server, where the test reads it.

chromium is one of scripts/deps.sh's packages: where it is missing or
cannot run, the test fails and says so (it is never skipped)."""
import json
import os
import shutil
import signal
import subprocess
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import HOST
from streamclient import free_port
from streamclient import upstream_fixture  # noqa: F401 (the upstream: streamup.py)

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-extensions", "--disable-default-apps", "--mute-audio"]

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>idemproxy from a browser</title></head>
<body><pre id="out">running</pre>
<script>
const API = "http://127.0.0.1:%(pport)d";
const KEY = "%(key)s";
const within = (ms, p, what) => Promise.race([p, new Promise((_, no) =>
    setTimeout(() => no(new Error(what + ": no answer in " + ms + " ms")), ms))]);

async function order() {
  const r = await fetch(API + "/v1/orders", {method: "POST",
      headers: {"Content-Type": "application/json", "Idempotency-Key": KEY},
      body: JSON.stringify({sku: "book", qty: 1})});
  return {status: r.status, replayed: r.headers.get("Idempotent-Replayed"),
          location: r.headers.get("Location"), body: await r.text()};
}

function events(n) {
  return new Promise((done) => {
    const got = [];
    const es = new EventSource(API + "/events?n=" + n + "&interval=0.2&id=browser");
    es.addEventListener("tick", (e) => {
      got.push({data: JSON.parse(e.data), at: Date.now() / 1000});
      if (got.length === n) { es.close(); done(got); }
    });
    es.onerror = () => { es.close(); done(got); };
  });
}

function websocket() {
  return new Promise((done) => {
    const got = [];
    const ws = new WebSocket("ws://127.0.0.1:%(pport)d/ws");
    ws.binaryType = "arraybuffer";
    ws.onopen = () => { ws.send("hello from the browser"); ws.send(new Uint8Array([1, 2, 3, 250])); };
    ws.onmessage = (m) => {
      got.push(typeof m.data === "string" ? m.data : Array.from(new Uint8Array(m.data)));
      if (got.length === 2) ws.close(1000, "done");
    };
    ws.onclose = (c) => done({got: got, code: c.code, clean: c.wasClean});
  });
}

(async () => {
  const seen = {};
  try {
    seen.first = await within(10000, order(), "first POST");
    seen.second = await within(10000, order(), "second POST");
    seen.events = await within(10000, events(3), "EventSource");
    seen.ws = await within(10000, websocket(), "WebSocket");
  } catch (e) {
    seen.error = String(e);
  }
  document.getElementById("out").textContent = JSON.stringify(seen);
  await fetch("/result", {method: "POST", body: JSON.stringify(seen)});
})();
</script></body></html>
"""


class PageServer:
    """The page's origin: GET / serves the page, POST /result takes what
    the page saw."""

    def __init__(self, page):
        self.port = free_port()
        self.result = None
        self.got = threading.Event()
        outer = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                body = page.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                outer.result = json.loads(self.rfile.read(n))
                outer.got.set()
                self.send_response(204)
                self.end_headers()

        self.srv = ThreadingHTTPServer((HOST, self.port), H)
        self.srv.daemon_threads = True
        self.thread = threading.Thread(target=self.srv.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.srv.shutdown()
        self.srv.server_close()
        return False


def chromium():
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.fail("chromium is not installed: run scripts/deps.sh (Debian's chromium)")
    return exe


def test_browser_page_on_another_origin(proxy, upstream, tmp_path):
    exe = chromium()
    p = proxy({"orders": {}}, proxy_opts={"workers": "1"})
    k = "browser-" + str(uuid.uuid4())
    with PageServer(PAGE % {"pport": p.port, "key": k}) as page:
        profile = tmp_path / "chromium-profile"
        log = open(tmp_path / "chromium.log", "wb")
        proc = subprocess.Popen([exe] + FLAGS + ["--user-data-dir=%s" % profile,
                                                 "http://%s:%d/" % (HOST, page.port)],
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + 60
            while not page.got.wait(0.2):
                if proc.poll() is not None or time.monotonic() > deadline:
                    break
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(5)
            log.close()
        seen = page.result
    if seen is None:
        with open(tmp_path / "chromium.log", "rb") as f:
            tail = f.read()[-3000:].decode("utf-8", "replace")
        pytest.fail("headless chromium did not report back (exit %r); its output:\n%s"
                    % (proc.returncode, tail))
    print("\nwhat the page saw: %s" % json.dumps(seen)[:1500])
    assert "error" not in seen, seen
    first, second = seen["first"], seen["second"]
    assert first["status"] == 201 and first["replayed"] == "false", first
    assert second["status"] == 201 and second["replayed"] == "true", second
    assert second["body"] == first["body"] and second["location"] == first["location"]
    # the upstream ran the order once, for a cross-origin page (preflighted)
    log = upstream.log()
    posts = [e for e in log if e["method"] == "POST" and e["path"] == "/v1/orders"]
    assert [e["key"] for e in posts] == [k], posts
    origin = dict((n.lower(), v) for n, v in posts[0]["headers"]).get("origin")
    assert origin == "http://127.0.0.1:%d" % page.port, posts[0]["headers"]
    pre = [e for e in log if e["method"] == "OPTIONS" and e["path"] == "/v1/orders"]
    assert pre, "no CORS preflight reached the upstream"
    # events, each as sent
    ev = seen["events"]
    assert [e["data"]["i"] for e in ev] == [1, 2, 3], ev
    assert all(e["at"] - e["data"]["t"] < 0.5 for e in ev), ev
    # the WebSocket echo
    ws = seen["ws"]
    assert ws["got"] == ["hello from the browser", [1, 2, 3, 250]], ws
    assert ws["code"] == 1000 and ws["clean"], ws
    up_ws = upstream.stats()["ws"]
    assert len(up_ws) == 1 and [m[:2] for m in up_ws[0]["messages"]] == \
        [["text", 22], ["binary", 4]], up_ws
