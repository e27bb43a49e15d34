"""Sentinel: three sentinels, a master and a replica (real processes on
127.0.0.1). idemproxy finds the master at the sentinels, follows a failover
(kill -9 of the master under traffic, and a manual SENTINEL FAILOVER whose
old master answers READONLY), and with replicas_ack = 1 loses nothing it
stored: every record stored before the kill is replayed, and no request
executes twice."""
import time
import uuid

import pytest

from conftest import wait_until
import redisdeploy as rd
from traffic import Traffic, post

LEASE = "30s"        # longer than the test: a re-execution would be a duplicate


@pytest.fixture
def group(tmp_path):
    g = rd.SentinelGroup(str(tmp_path / "sentinel"))
    g.start()
    yield g
    g.stop()


def sentinel_proxy(proxy, g, **redis_opts):
    o = {"url": None, "sentinels": g.sentinel_list(), "sentinel_master": g.name,
         "timeout": "500ms"}
    o.update(redis_opts)
    return proxy(routes={"orders": {"lease": LEASE}},
                 proxy_opts={"upstream_timeout": "5s", "workers": "2"}, redis_opts=o)


def full_log(p):
    with open(p.errpath, errors="replace") as f:
        return f.read()


def restart_as_replica(g, old, new_port):
    """The killed master comes back (as a pod would) as the new master's
    replica, so that replicas_ack = 1 can be met again."""
    old.extra = ["--replicaof", "127.0.0.1", str(new_port)]
    old.start()
    rd.replicas_online(new_port, 1, 20)


def test_sentinel_failover_loses_no_acknowledged_record(proxy, upstream, group):
    p = sentinel_proxy(proxy, group, replicas_ack="1", replicas_ack_timeout="200ms")
    assert wait_until(lambda: p.readyz()[0] == 200, 10), p.readyz()
    stored = {}
    for i in range(30):
        k = "before-%d-%s" % (i, uuid.uuid4())
        st, code, rep, body = post(p.port, k, b'{"n": %d}' % i)
        assert st == 201 and rep == "false", (st, code, body)
        stored[k] = body
    old = group.master
    t = Traffic(p.port, threads=3, prefix="during").start()
    time.sleep(0.5)
    old.kill9()
    new = group.wait_failover(old.port)
    restart_as_replica(group, old, new.port)
    # the service resumes: a new key is executed and stored, acknowledged
    assert wait_until(lambda: post(p.port, "after-%s" % uuid.uuid4(), b"{}")[0] == 201, 20)
    time.sleep(0.5)
    t.stop()
    # every record stored before the kill is replayed, byte for byte
    for k, body in stored.items():
        st, code, rep, b = post(p.port, k, b'{"n": %d}' % int(k.split("-")[1]))
        assert (st, rep, b) == (201, "true", body), (k, st, code)
    # nothing executed twice, before, during or after the failover
    log = upstream.log()
    per = {}
    for e in log:
        per[e["key"]] = per.get(e["key"], 0) + 1
    twice = {k: n for k, n in per.items() if n > 1}
    assert not twice, twice
    # the traffic saw only normal answers and row 10
    assert not t.unexpected(), (t.unexpected()[:10], t.counts())
    assert len(t.done) > 0, t.counts()
    assert p.metric("idemproxy_redis_failovers_total") >= 1
    assert "redis master changed" in full_log(p)
    assert p.readyz()[0] == 200


def test_sentinel_manual_failover_readonly_followed(proxy, upstream, group):
    """SENTINEL FAILOVER demotes the master while idemproxy is connected
    to it: its writes answer READONLY (row 10) until the switch, then the
    new master serves, and what was stored is replayed."""
    p = sentinel_proxy(proxy, group)
    assert wait_until(lambda: p.readyz()[0] == 200, 10), p.readyz()
    k0 = "k0-%s" % uuid.uuid4()
    assert post(p.port, k0, b"{}")[0] == 201
    # the replica has it before the switch (no replicas_ack here)
    old = group.master
    rd.wait_for(lambda: rd.info_field(old.port, "replication", "master_repl_offset") ==
                rd.info_field(group.replicas[0].port, "replication", "slave_repl_offset"), 5)
    t = Traffic(p.port, threads=2, prefix="manual").start()
    time.sleep(0.3)
    assert rd.cmd(group.sentinels[0].port, "SENTINEL", "FAILOVER", group.name) == "OK"
    group.wait_failover(old.port)
    assert wait_until(lambda: post(p.port, "after-%s" % uuid.uuid4(), b"{}")[0] == 201, 15)
    t.stop()
    st, code, rep, b = post(p.port, k0, b"{}")
    assert (st, rep) == (201, "true"), (st, code)
    assert not t.unexpected(), (t.unexpected()[:10], t.counts())
    per = {}
    for e in upstream.log():
        per[e["key"]] = per.get(e["key"], 0) + 1
    assert not {k: n for k, n in per.items() if n > 1}
    assert p.metric("idemproxy_redis_failovers_total") >= 1


def test_sentinel_unreachable_is_named(proxy, upstream, group):
    """A sentinel that is down is skipped (the next one answers) and named
    on /readyz; a master name the sentinels do not know is not ready."""
    group.sentinels[0].stop()
    p = sentinel_proxy(proxy, group)
    assert wait_until(lambda: p.readyz()[0] == 200, 10), p.readyz()
    st, j = p.readyz()
    assert "sentinel at 127.0.0.1:%d" % group.sentinels[0].port in j.get("warning", ""), j
    assert post(p.port, "k-%s" % uuid.uuid4(), b"{}")[0] == 201
    bad = sentinel_proxy(proxy, group, sentinel_master="nosuch")
    st, j = bad.readyz()
    assert st == 503 and "does not know a master named" in j["reason"], j
    assert post(bad.port, "k-%s" % uuid.uuid4(), b"{}")[:2] == (503, "STORE_UNAVAILABLE")
