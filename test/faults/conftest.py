"""Fixtures for the idemproxy fault suite: real redis-server(s), the test
upstream and idemproxy processes (the FAULTS=1 build where a crash point is
wanted), all on 127.0.0.1, and the shared execution-log checker
(faultcheck.py) that every scenario ends with.

The process helpers (Redis, Upstream, Proxy, request, ...) are the
end-to-end suite's, loaded from test/e2e/conftest.py under another module
name so the two conftest modules do not collide."""
import http.client
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

import faultcheck  # noqa: E402


def _load_e2e():
    path = os.path.join(ROOT, "test", "e2e", "conftest.py")
    spec = importlib.util.spec_from_file_location("idem_e2e_conftest", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


E2E = _load_e2e()
HOST = E2E.HOST
BIN = E2E.BIN
FAULTS_BIN = (os.environ.get("IDEMPROXY_FAULTS_BIN")
              or os.path.join(ROOT, "proxy", "idemproxy-faults"))
request = E2E.request
raw_request = E2E.raw_request
wait_until = E2E.wait_until
Resp = E2E.Resp

# Short leases keep the suite fast: lease 2s, upstream_timeout 1s.
LEASE = 2.0
ROUTE = {"lease": "2s", "ttl": "1h"}
PROXY_OPTS = {"upstream_timeout": "1s"}
ORDER = {"item": "book", "qty": 1}


def new_key(tag="k"):
    return "%s-%s" % (tag, uuid.uuid4())


class Cluster:
    """One scenario's processes, the client ledger, and the checker."""

    def __init__(self, tmp_path):
        self.tmp = tmp_path
        self.redis = None
        self.upstream = None
        self.proxies = []
        self.ledger = faultcheck.Ledger()
        self.losses = []          # times Redis lost its data
        self.checked = False
        self.report = None

    # ---- processes

    def start_redis(self, aof=False):
        d = self.tmp / "redis"
        d.mkdir(exist_ok=True)
        r = E2E.Redis(str(d))
        r.aof = aof
        self.redis = r
        r.start()
        return r

    def start_upstream(self, args=()):
        u = E2E.Upstream(args)
        self.upstream = u
        u.start()
        return u

    def proxy(self, routes=None, crash_at=None, start=True, proxy_opts=None, faults=None,
              **kw):
        """An idemproxy on this cluster's Redis and upstream. crash_at picks
        the FAULTS=1 build with IDEMPROXY_CRASH_AT set; faults, that build
        with those variables set (IDEMPROXY_RESOLVE_DELAY_MS)."""
        p = E2E.Proxy(self.tmp, len(self.proxies), self.upstream.port, self.redis.port)
        env = dict(faults or {})
        if crash_at is not None:
            env["IDEMPROXY_CRASH_AT"] = crash_at
        if env:
            if not os.access(FAULTS_BIN, os.X_OK):
                pytest.fail("%s is missing: build it with `make FAULTS=1`" % FAULTS_BIN)
            p.bin = FAULTS_BIN
            p.env = dict(os.environ, **env)
        if routes is None:
            routes = {"orders": dict(ROUTE)}
        opts = dict(PROXY_OPTS)
        opts.update(proxy_opts or {})
        p.write_config(routes, proxy_opts=opts, **kw)
        self.proxies.append(p)
        if start:
            p.start()
        return p

    def close(self):
        problems = []
        for p in self.proxies:
            if p.proc is None:
                continue
            try:
                p.proc.send_signal(signal.SIGCONT)
            except OSError:
                pass
            if p.proc.poll() is None:
                p.proc.send_signal(signal.SIGTERM)
                try:
                    rc = p.proc.wait(10)
                    if rc != 0:
                        problems.append("proxy %d exited %r after SIGTERM: %s"
                                        % (p.idx, rc, p.stderr()))
                except subprocess.TimeoutExpired:
                    p.proc.kill()
                    p.proc.wait(5)
                    problems.append("proxy %d ignored SIGTERM for 10s" % p.idx)
            elif not p.intentional_kill and p.proc.returncode != 0:
                problems.append("proxy %d died with %r: %s"
                                % (p.idx, p.proc.returncode, p.stderr()))
            try:
                p.err.close()
            except Exception:
                pass
        if self.upstream is not None:
            self.upstream.stop()
        if self.redis is not None:
            if self.redis.proc is not None:
                try:
                    self.redis.proc.send_signal(signal.SIGCONT)
                except OSError:
                    pass
            self.redis.stop()
        return problems

    # ---- clients

    def send(self, p, key, body=None, path="/v1/orders", headers=None, ident=None,
             timeout=10.0, method="POST"):
        """One request through proxy p, recorded in the ledger. Returns an
        Answer (status None and exc set on a connection error)."""
        h = dict(headers or {})
        if key is not None:
            h["Idempotency-Key"] = key
        t0 = time.time()
        try:
            r = request(p.port, method, path, ORDER if body is None else body, h, timeout)
            a = faultcheck.Answer(ident or key, t0, time.time(), r.status, r.headers, r.body,
                                  via=p.idx)
        except Exception as e:  # noqa: a failed connection is an answer too
            a = faultcheck.Answer(ident or key, t0, time.time(), exc=repr(e), via=p.idx)
        return self.ledger.add(a)

    def keepalive(self, p):
        """A keep-alive client on proxy p (one per thread), recording answers."""
        return KeepAlive(self, p)

    def until(self, p, key, pred, timeout=10.0, step=0.1, **kw):
        """Retry as a client would until pred(answer); returns the last answer."""
        deadline = time.monotonic() + timeout
        while True:
            a = self.send(p, key, **kw)
            if pred(a) or time.monotonic() >= deadline:
                return a
            time.sleep(step)

    def log(self):
        return self.upstream.log()

    def executions(self, key=None):
        return [e for e in self.log() if key is None or e["key"] == key]

    def records(self):
        return faultcheck.dump_records(self.redis.port)

    def check(self, lease=LEASE, **kw):
        """The shared checker over the upstream log, the ledger and Redis."""
        self.checked = True
        recs = self.records() if self.redis and self.redis.proc else {}
        self.report = faultcheck.check(self.log(), self.ledger, recs, lease,
                                       losses=self.losses, **kw)
        print(self.report)
        assert not self.report.violations, str(self.report)
        return self.report


class KeepAlive:
    def __init__(self, cluster, p, timeout=30.0):
        self.c, self.p, self.timeout = cluster, p, timeout
        self.conn = None

    def close(self):
        if self.conn is not None:
            self.conn.close()
        self.conn = None

    def send(self, key, body=None, path="/v1/orders", headers=None, ident=None):
        h = {"Content-Type": "application/json"}
        h.update(headers or {})
        if key is not None:
            h["Idempotency-Key"] = key
        data = json.dumps(ORDER if body is None else body).encode()
        t0 = time.time()
        try:
            if self.conn is None:
                self.conn = http.client.HTTPConnection(HOST, self.p.port, timeout=self.timeout)
            self.conn.request("POST", path, body=data, headers=h)
            r = self.conn.getresponse()
            a = faultcheck.Answer(ident or key, t0, time.time(), r.status, r.getheaders(),
                                  r.read(), via=self.p.idx)
            if r.will_close:
                self.close()
        except Exception as e:  # noqa
            self.close()
            a = faultcheck.Answer(ident or key, t0, time.time(), exc=repr(e), via=self.p.idx)
        return self.c.ledger.add(a)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


@pytest.fixture
def cluster(tmp_path, request):
    """Redis + upstream started; proxies from cluster.proxy(...)."""
    c = Cluster(tmp_path)
    try:
        c.start_redis()
        c.start_upstream()
        yield c
    finally:
        problems = c.close()
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.passed:
        assert c.checked, "the scenario passed without running the execution-log checker"
        assert not problems, "\n".join(problems)
