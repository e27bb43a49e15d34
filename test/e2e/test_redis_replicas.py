"""replicas_ack = N against a master with one replica (real processes on
127.0.0.1): claims and stored answers wait for the replica with one WAIT
per batch; a replica that does not acknowledge makes a claim 503 (released,
nothing forwarded) and a stored answer pass on, counted and logged. Also
what a Redis that answers nonsense does (an error for that request, never
a crash), and what a reload says about options that need a restart."""
import socket
import threading
import time
import uuid

import pytest

from conftest import wait_until
import redisdeploy as rd
from traffic import post


@pytest.fixture
def replicated(tmp_path):
    m = rd.Server(str(tmp_path / "m")).start()
    r = rd.Server(str(tmp_path / "r"), extra=["--replicaof", "127.0.0.1", str(m.port)]).start()
    rd.replicas_online(m.port, 1)
    yield m, r
    r.stop()
    m.stop()


def acked_proxy(proxy, m, **opts):
    o = {"url": "redis://127.0.0.1:%d/0" % m.port, "replicas_ack": "1",
         "replicas_ack_timeout": "200ms", "timeout": "1s"}
    o.update(opts)
    return proxy(routes={"orders": {"lease": "30s"}},
                 proxy_opts={"upstream_timeout": "5s", "workers": "1"}, redis_opts=o)


def wait_calls(port):
    for line in rd.cmd(port, "INFO", "commandstats").decode().splitlines():
        if line.startswith("cmdstat_wait:"):
            return int(line.split("calls=")[1].split(",")[0])
    return 0


def test_acknowledged_claims_and_answers(proxy, upstream, replicated):
    m, r = replicated
    p = acked_proxy(proxy, m)
    k = str(uuid.uuid4())
    st, code, rep, body = post(p.port, k, b"{}")
    assert (st, rep) == (201, "false"), (st, code)
    assert wait_calls(m.port) >= 1
    # the replica has the stored answer once the client has it
    name = "idem:{%s}" % p.admin("/records?route=orders&key=" + k).json()["key_hash"]
    assert rd.cmd(r.port, "HGET", name, "state") == b"done"
    assert post(p.port, k, b"{}")[:3] == (201, None, "true")
    assert p.metric('idemproxy_redis_unacked_claims_total') == 0


def test_claims_in_a_loop_turn_share_a_wait(proxy, upstream, replicated):
    """Many claims at once are covered by fewer WAITs than claims."""
    m, r = replicated
    p = acked_proxy(proxy, m)
    before = wait_calls(m.port)
    n = 40
    res = []

    def one(i):
        res.append(post(p.port, "batch-%d-%s" % (i, uuid.uuid4()), b"{}")[0])
    ts = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(30)
    assert res.count(201) == n, res
    waits = wait_calls(m.port) - before
    # each request writes twice (claim, answer): 2n writes, far fewer WAITs
    assert 0 < waits < 2 * n, waits


def test_replica_stalled_claim_refused_nothing_forwarded(proxy, upstream, replicated):
    m, r = replicated
    p = acked_proxy(proxy, m)
    r.pause()
    try:
        k = str(uuid.uuid4())
        st, code, rep, body = post(p.port, k, b"{}")
        assert (st, code) == (503, "STORE_UNAVAILABLE"), (st, body)
        assert upstream.count(key=k) == 0
        # many at once: every one refused, none forwarded, bounded
        ks = ["stall-%d-%s" % (i, uuid.uuid4()) for i in range(20)]
        out = []
        ts = [threading.Thread(target=lambda k=k: out.append(post(p.port, k, b"{}")[:2]))
              for k in ks]
        for t in ts:
            t.start()
        for t in ts:
            t.join(30)
        assert out == [(503, "STORE_UNAVAILABLE")] * 20, out
        assert all(upstream.count(key=x) == 0 for x in ks)
    finally:
        r.resume()
    assert p.metric('idemproxy_redis_unacked_claims_total') >= 21
    # the claim was released: a retry (once the replica caught up) executes, once
    assert wait_until(lambda: post(p.port, k, b"{}")[:3] == (201, None, "false"), 10)
    assert upstream.count(key=k) == 1
    assert "claim not acknowledged by replicas" in p.stderr()


def test_replica_stalled_answer_passed_on_and_counted(proxy, upstream, replicated):
    """The claim is acknowledged, then the replica stops while the upstream
    runs: the stored answer is not acknowledged, and still passed on."""
    m, r = replicated
    p = acked_proxy(proxy, m)
    k = str(uuid.uuid4())
    box = {}
    t = threading.Thread(target=lambda: box.setdefault("r", post(
        p.port, k, b"{}") if False else None))
    import http.client
    import json

    def slow():
        c = http.client.HTTPConnection("127.0.0.1", p.port, timeout=15)
        c.request("POST", "/v1/orders", body=b"{}", headers={
            "Content-Type": "application/json", "Idempotency-Key": k, "X-Test-Sleep": "1.0"})
        resp = c.getresponse()
        box["r"] = (resp.status, resp.getheader("Idempotent-Replayed"), resp.read())
    t = threading.Thread(target=slow)
    t.start()
    assert wait_until(lambda: upstream.count(key=k) == 1, 5)
    r.pause()
    try:
        t.join(15)
    finally:
        r.resume()
    assert box["r"][:2] == (201, "false"), box
    assert p.metric('idemproxy_redis_unacked_answers_total') >= 1
    assert "stored answer not acknowledged by replicas" in p.stderr()
    assert post(p.port, k, b"{}")[:3] == (201, None, "true")
    assert json.loads(box["r"][2])


# --------------------------------------------- a Redis that answers nonsense

class FakeRedis(threading.Thread):
    """Answers SCRIPT LOAD and INFO as Redis would (so idemproxy gets ready),
    and every EVALSHA with the next of `answers` (raw bytes), cycling."""

    def __init__(self, answers):
        super().__init__(daemon=True)
        self.answers = answers
        self.i = 0
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.stop = False

    def run(self):
        self.sock.settimeout(0.2)
        while not self.stop:
            try:
                c, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self.serve, args=(c,), daemon=True).start()

    def serve(self, c):
        import resp
        f = c.makefile("rb")
        rc = resp.RedisClient.__new__(resp.RedisClient)
        rc.f = f
        try:
            while True:
                cmd = rc.read()
                if not isinstance(cmd, list):
                    return
                name = cmd[0].upper()
                if name == b"SCRIPT":
                    out = b"$40\r\n" + b"0" * 40 + b"\r\n"
                elif name == b"INFO":
                    t = b"maxmemory_policy:noeviction\r\nrun_id:" + b"1" * 40 + b"\r\naof_enabled:1\r\n"
                    out = b"$%d\r\n%s\r\n" % (len(t), t)
                else:
                    out = self.answers[self.i % len(self.answers)]
                    self.i += 1
                c.sendall(out)
        except Exception:
            pass
        finally:
            c.close()

    def close(self):
        self.stop = True
        self.sock.close()


@pytest.mark.parametrize("answer", [
    b":1\r\n", b"+OK\r\n", b"*0\r\n", b"*1\r\n$4\r\ndone\r\n", b"*2\r\n$8\r\ninflight\r\n$1\r\nx\r\n",
    b"*4\r\n$4\r\ndone\r\n:1\r\n$0\r\n\r\n$0\r\n\r\n", b"-ERR nonsense\r\n", b"-MOVED 1\r\n",
    b"-ASK 99999 h:1\r\n", b"$-1\r\n", b"*-1\r\n", b"*1\r\n*1\r\n*1\r\n:1\r\n",
    b"!garbage\r\n", b"$5\r\nab\r\n",
])
def test_nonsense_from_redis_is_an_error_not_a_crash(proxy, upstream, answer):
    """Whatever a peer sends as the answer to a claim, the request gets row
    10 (or the connection is dropped and remade), and idemproxy keeps
    running: the proxy fixture checks it exits 0 on SIGTERM."""
    fake = FakeRedis([answer])
    fake.start()
    try:
        p = proxy(redis_port=fake.port, routes={"orders": {"on_store_error": "reject"}})
        for _ in range(3):
            k = str(uuid.uuid4())
            st, code, rep, body = post(p.port, k, b"{}", timeout=5)
            assert st in (503, 500, 409), (st, body)
            assert upstream.count(key=k) == 0
        assert p.proc.poll() is None
    finally:
        fake.close()
