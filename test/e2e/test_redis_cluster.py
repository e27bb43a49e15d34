"""Redis Cluster: three masters and three replicas made with `redis-cli
--cluster create` (real processes on 127.0.0.1). Records spread over every
master; a slot migrated by hand (ASK, then MOVED) and a resharding under
traffic leave only the normal answers and row 10; a master killed under
traffic, its replica promoted: the service resumes, and with replicas_ack
= 1 every acknowledged record is replayed and nothing executes twice."""
import time
import uuid

import pytest

from conftest import wait_until
import redisdeploy as rd
from traffic import Traffic, post

LEASE = "30s"


@pytest.fixture
def cluster(tmp_path):
    c = rd.Cluster(str(tmp_path / "cluster"))
    c.start()
    yield c
    c.stop()


def cluster_proxy(proxy, c, **redis_opts):
    o = {"url": None, "cluster_nodes": c.seeds(2), "timeout": "500ms"}
    o.update(redis_opts)
    return proxy(routes={"orders": {"lease": LEASE}},
                 proxy_opts={"upstream_timeout": "5s", "workers": "2"}, redis_opts=o)


def rkey(p, key):
    """The record's Redis key, from the record API's key_hash."""
    r = p.admin("/records?route=orders&key=" + key)
    assert r.status == 200, r
    return "idem:{%s}" % r.json()["key_hash"]


def executions(upstream):
    per = {}
    for e in upstream.log():
        per[e["key"]] = per.get(e["key"], 0) + 1
    return per


def store(p, n, tag):
    out = {}
    for i in range(n):
        k = "%s-%d-%s" % (tag, i, uuid.uuid4())
        st, code, rep, body = post(p.port, k, b'{"i": %d}' % i)
        assert (st, rep) == (201, "false"), (st, code, body)
        out[k] = (b'{"i": %d}' % i, body)
    return out


def all_replayed(p, stored):
    for k, (req, body) in stored.items():
        st, code, rep, b = post(p.port, k, req)
        assert (st, rep, b) == (201, "true", body), (k, st, code)


def test_cluster_spread_ask_moved_and_resharding(proxy, upstream, cluster):
    p = cluster_proxy(proxy, cluster)
    assert wait_until(lambda: p.readyz()[0] == 200, 10), p.readyz()
    stored = store(p, 120, "spread")
    masters = cluster.masters()
    sizes = [len(rd.cmd(port, "KEYS", "idem:*")) for _, port in masters]
    assert all(n > 0 for n in sizes) and sum(sizes) == 120, sizes

    # one slot migrated by hand: the key moved first (ASK), then the slot (MOVED)
    k = next(iter(stored))
    name = rkey(p, k)
    slot = cluster.keyslot(name)
    src = next(m for m in masters if int(rd.cmd(m[1], "CLUSTER", "COUNTKEYSINSLOT", slot)) > 0)
    dst = next(m for m in masters if m != src)
    assert rd.cmd(dst[1], "CLUSTER", "SETSLOT", slot, "IMPORTING", src[0]) == "OK"
    assert rd.cmd(src[1], "CLUSTER", "SETSLOT", slot, "MIGRATING", dst[0]) == "OK"
    assert rd.cmd(src[1], "MIGRATE", "127.0.0.1", dst[1], "", 0, 5000, "KEYS", name) == "OK"
    st, code, rep, b = post(p.port, k, stored[k][0])
    assert (st, rep, b) == (201, "true", stored[k][1]), (st, code)
    assert p.metric('idemproxy_redis_ask_total') >= 1
    for m in masters:
        rd.cmd(m[1], "CLUSTER", "SETSLOT", slot, "NODE", dst[0])
    st, code, rep, b = post(p.port, k, stored[k][0])
    assert (st, rep, b) == (201, "true", stored[k][1]), (st, code)
    assert p.metric('idemproxy_redis_moved_total') >= 1

    # a resharding under traffic: only the normal answers and row 10
    t = Traffic(p.port, threads=3, prefix="reshard").start()
    time.sleep(0.3)
    cluster.reshard(masters[0][0], masters[1][0], 1500)
    time.sleep(0.5)
    t.stop()
    assert not t.unexpected(), (t.unexpected()[:10], t.counts())
    assert len(t.done) > 0
    all_replayed(p, stored)
    twice = {k: n for k, n in executions(upstream).items() if n > 1}
    assert not twice, twice
    assert p.metric("idemproxy_redis_slot_map_changes_total") >= 1
    assert p.readyz()[0] == 200


def test_cluster_master_killed_acknowledged_records_replayed(proxy, upstream, cluster):
    p = cluster_proxy(proxy, cluster, replicas_ack="1", replicas_ack_timeout="200ms")
    assert wait_until(lambda: p.readyz()[0] == 200, 10), p.readyz()
    stored = store(p, 60, "acked")
    victim_id, victim_port = cluster.masters()[2]
    replica_id, replica_port = cluster.replica_of(victim_id)
    t = Traffic(p.port, threads=3, prefix="kill").start()
    time.sleep(0.5)
    victim = cluster.node(victim_port)
    victim.kill9()
    cluster.wait_promoted(replica_port)
    # the killed node comes back, as its replica's replica now (as a pod would)
    victim.start()
    cluster.wait_ok()
    cluster.wait_synced()
    rd.replicas_online(replica_port, 1, 20, key=cluster.key_served_by(replica_id))
    # the service resumes on every master: new keys are stored, acknowledged
    assert wait_until(lambda: all(post(p.port, "after-%d-%s" % (i, uuid.uuid4()), b"{}")[0] == 201
                                  for i in range(12)), 20)
    t.stop()
    all_replayed(p, stored)
    twice = {k: n for k, n in executions(upstream).items() if n > 1}
    assert not twice, twice
    assert not t.unexpected(), (t.unexpected()[:10], t.counts())
    assert len(t.done) > 0
    assert p.metric("idemproxy_redis_failovers_total") >= 1
    assert p.readyz()[0] == 200
