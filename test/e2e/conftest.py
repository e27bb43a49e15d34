"""Fixtures for the idemproxy end-to-end tests: a real redis-server, the test
upstream (upstream.py) and a factory that starts idemproxy with a config."""
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from ports import free_port  # noqa: E402  (test/ports.py)
import resp  # noqa: E402  (test/resp.py)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BIN = os.environ.get("IDEMPROXY_BIN") or os.path.join(ROOT, "proxy", "idemproxy")
REDIS_BIN = shutil.which("redis-server") or "/usr/bin/redis-server"
PY = sys.executable or "/usr/bin/python3"
HOST = "127.0.0.1"


def kill_process(proc):
    """SIGKILL a child if it still runs, and reap it (bounded)."""
    if proc is not None and proc.poll() is None:
        proc.kill()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            pass


def wait_port(port, timeout=10.0, proc=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            socket.create_connection((HOST, port), timeout=0.2).close()
            return True
        except OSError:
            time.sleep(0.02)
    return False


def wait_until(pred, timeout=10.0, step=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()


class HeaderList:
    """self.headers is a list of (name, value); names match in any case."""

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def header_all(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]


class Resp(HeaderList):
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # list of (name, value)
        self.body = body

    def json(self):
        return json.loads(self.body)

    def code(self):
        try:
            return self.json()["error"]["code"]
        except Exception:
            return None

    def __repr__(self):
        return "Resp(%d, %r, %r)" % (self.status, self.headers, self.body[:300])


def request(port, method, path, body=None, headers=None, timeout=10.0):
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode()
        hdrs = dict(headers or {})
        if body is not None and not any(k.lower() == "content-type" for k in hdrs):
            hdrs["Content-Type"] = "application/json"
        conn.request(method, path, body=body, headers=hdrs)
        r = conn.getresponse()
        data = r.read()
        return Resp(r.status, r.getheaders(), data)
    finally:
        conn.close()


def raw_request(port, data, timeout=5.0):
    """Send raw bytes, read until the peer closes or timeout. Returns
    (bytes received, closed_by_peer)."""
    s = socket.create_connection((HOST, port), timeout=timeout)
    try:
        s.sendall(data)
        out = b""
        closed = False
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                closed = True
                break
            if not chunk:
                closed = True
                break
            out += chunk
        return out, closed
    finally:
        s.close()


# ---------------------------------------------------------------- redis

class Redis:
    def __init__(self, tmpdir):
        self.port = free_port()
        self.dir = tmpdir
        self.proc = None
        self.aof = False     # appendonly yes, appendfsync always when set

    def start(self):
        persist = (["--appendonly", "yes", "--appendfsync", "always"] if self.aof
                   else ["--appendonly", "no"])
        self.proc = subprocess.Popen(
            [REDIS_BIN, "--port", str(self.port), "--bind", HOST,
             "--save", ""] + persist + [
             "--maxmemory-policy", "noeviction", "--dir", self.dir,
             "--daemonize", "no", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not wait_port(self.port, 10, self.proc):
            self.stop()
            raise RuntimeError("redis-server did not start")

    def stop(self):
        kill_process(self.proc)
        self.proc = None

    def cmd(self, *args):
        """One command; returns the decoded reply (test/resp.py)."""
        return resp.command(self.port, *args)


@pytest.fixture
def redis(tmp_path):
    d = tmp_path / "redis"
    d.mkdir()
    r = Redis(str(d))
    r.start()
    try:
        yield r
    finally:
        r.stop()


# ---------------------------------------------------------------- upstream

class Upstream:
    def __init__(self, args=()):
        self.port = free_port()
        self.proc = None
        self.args = list(args)     # e.g. ["--idle-timeout", "0.05"]

    def start(self):
        self.proc = subprocess.Popen([PY, os.path.join(HERE, "upstream.py"), str(self.port)]
                                     + self.args,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        ok = wait_until(self._answers, 10)
        if not ok:
            self.stop()
            raise RuntimeError("upstream did not start")

    def _answers(self):
        if self.proc.poll() is not None:
            raise RuntimeError("upstream exited")
        try:
            request(self.port, "GET", "/__log", timeout=1)
            return True
        except OSError:
            return False

    def stop(self):
        kill_process(self.proc)
        self.proc = None

    def log(self):
        return request(self.port, "GET", "/__log", timeout=5).json()

    def count(self, path=None, key=None):
        return len([e for e in self.log()
                    if (path is None or e["path"] == path)
                    and (key is None or e["key"] == key)])

    def reset(self):
        request(self.port, "POST", "/__reset", body=b"", timeout=5)


@pytest.fixture
def upstream():
    u = Upstream()
    u.start()
    try:
        yield u
    finally:
        u.stop()


# ---------------------------------------------------------------- proxy

DEFAULT_ROUTE = {
    "path": "/v1/orders",
    "methods": "POST",
    "require_key": "on",
    "lease": "5s",
    "ttl": "1h",
    "scope": "none",
    "fingerprint_body": "json",
    "in_flight": "reject",
    "mismatch_status": "409",
    "replay_status": "original",
    "on_store_error": "reject",
    "max_store": "1m",
}


def render_config(port, admin_port, upstream_port, redis_port, routes,
                  proxy_opts=None, redis_opts=None, extra=""):
    p = {"listen": "%s:%d" % (HOST, port),
         "upstream": "http://%s:%d" % (HOST, upstream_port),
         "upstream_timeout": "2s",
         "max_body": "64k"}
    p.update(proxy_opts or {})
    r = {"url": "redis://%s:%d/0" % (HOST, redis_port),
         "key_prefix": "idem:",
         "timeout": "500ms"}
    r.update(redis_opts or {})
    # a value None leaves the key out (url, for sentinels or cluster_nodes)
    out = ["[proxy]"] + ["%s = %s" % kv for kv in p.items() if kv[1] is not None]
    out += ["", "[redis]"] + ["%s = %s" % kv for kv in r.items() if kv[1] is not None]
    out += ["", "[admin]", "listen = %s:%d" % (HOST, admin_port)]
    for name, over in routes.items():
        rt = dict(DEFAULT_ROUTE)
        rt.update(over)
        out += ["", "[route %s]" % name]
        out += ["%s = %s" % (k, v) for k, v in rt.items() if v is not None]
    return "\n".join(out) + "\n" + extra


class Proxy:
    def __init__(self, tmp_path, idx, upstream_port, redis_port):
        self.tmp = tmp_path
        self.idx = idx
        self.port = free_port()
        self.admin_port = free_port()
        self.upstream_port = upstream_port
        self.redis_port = redis_port
        self.conf = str(tmp_path / ("idemproxy-%d.ini" % idx))
        self.errpath = str(tmp_path / ("idemproxy-%d.stderr" % idx))
        self.proc = None
        self.intentional_kill = False
        self.args = None
        self.bin = BIN        # the fault suite runs proxy/idemproxy-faults
        self.env = None       # and sets IDEMPROXY_CRASH_AT here

    def write_config(self, routes=None, **kw):
        if routes is None:
            routes = {"orders": {}}
        self.args = (routes, kw)
        text = render_config(self.port, self.admin_port, self.upstream_port,
                             self.redis_port, routes, **kw)
        with open(self.conf, "w") as f:
            f.write(text)
        return text

    def start(self):
        self.err = open(self.errpath, "ab")
        self.proc = subprocess.Popen([self.bin, "-c", self.conf], stdout=self.err,
                                     stderr=subprocess.STDOUT, env=self.env)
        self.intentional_kill = False
        if not wait_port(self.port, 10, self.proc):
            rc = self.proc.poll()
            self.intentional_kill = True
            self.proc.kill()
            self.proc.wait(5)
            raise RuntimeError("idemproxy did not listen (rc=%r): %s" % (rc, self.stderr()))
        wait_port(self.admin_port, 5, self.proc)
        # Requests before Redis is connected get 503 (by design); wait for
        # readiness, bounded, without requiring it (some tests stop Redis).
        def ready():
            try:
                return self.admin("/readyz", timeout=1.0).status == 200
            except OSError:
                return False
        wait_until(ready, timeout=3.0)

    def stderr(self):
        try:
            with open(self.errpath, "rb") as f:
                return f.read().decode("utf-8", "replace")[-4000:]
        except OSError:
            return ""

    def req(self, method, path, body=None, headers=None, timeout=10.0):
        return request(self.port, method, path, body, headers, timeout)

    def post(self, path="/v1/orders", body=None, key=None, headers=None, timeout=10.0):
        h = dict(headers or {})
        if key is not None:
            h["Idempotency-Key"] = key
        return request(self.port, "POST", path, {} if body is None else body, h, timeout)

    def admin(self, path, timeout=5.0):
        return request(self.admin_port, "GET", path, timeout=timeout)

    def readyz(self):
        """(status, JSON body) of /readyz."""
        r = self.admin("/readyz", timeout=3)
        return r.status, r.json()

    def metric(self, name):
        """The value of an unlabeled metric (or one series, labels and
        all) on /metrics; None when absent."""
        for line in self.admin("/metrics").body.decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return None

    def kill9(self):
        self.intentional_kill = True
        self.proc.kill()
        self.proc.wait(5)

    def terminate(self, timeout=15):
        """SIGTERM, wait; returns the exit code (SIGKILL after timeout)."""
        if self.proc.poll() is not None:
            return self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.intentional_kill = True
            self.proc.kill()
            self.proc.wait(5)
            raise AssertionError("idemproxy did not exit within %ss of SIGTERM" % timeout)

    def hup(self):
        self.proc.send_signal(signal.SIGHUP)


@pytest.fixture
def proxy(tmp_path, upstream, redis):
    """Factory: proxy(routes={"orders": {...}}, proxy_opts={...}) -> Proxy."""
    made = []

    def make(routes=None, start=True, upstream_port=None, redis_port=None, **kw):
        p = Proxy(tmp_path, len(made),
                  upstream_port or upstream.port, redis_port or redis.port)
        made.append(p)
        p.write_config(routes, **kw)
        if start:
            p.start()
        return p

    yield make

    problems = []
    for p in made:
        if p.proc is None:
            continue
        if p.proc.poll() is None:
            p.proc.send_signal(signal.SIGTERM)
            try:
                rc = p.proc.wait(10)
            except subprocess.TimeoutExpired:
                p.proc.kill()
                p.proc.wait(5)
                problems.append("proxy %d ignored SIGTERM for 10s" % p.idx)
                continue
            if rc != 0:
                problems.append("proxy %d exited %r after SIGTERM: %s" % (p.idx, rc, p.stderr()))
        elif not p.intentional_kill and p.proc.returncode not in (0,):
            problems.append("proxy %d died with %r: %s" % (p.idx, p.proc.returncode, p.stderr()))
        p.err.close()
    assert not problems, "\n".join(problems)
