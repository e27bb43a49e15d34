"""TLS to Redis (a CA and certificates made by openssl here), a wrong CA, the
verified name, mutual TLS; an ACL user with the least privilege the README
gives, and a wrong password. Real redis-server processes on 127.0.0.1."""
import glob
import os
import re
import uuid

import pytest

from conftest import ROOT, wait_until
import redisdeploy as rd
import resp


ORDER = {"item": "book", "qty": 1}


def key():
    return str(uuid.uuid4())


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return rd.Certs(str(tmp_path_factory.mktemp("certs")))


@pytest.fixture
def servers(tmp_path):
    made = []

    def make(**kw):
        s = rd.Server(str(tmp_path / ("redis-%d" % len(made))), **kw)
        made.append(s)
        return s.start()
    yield make
    for s in made:
        s.stop()


def wait_ready(p, timeout=10):
    return wait_until(lambda: p.readyz()[0] == 200, timeout)


def first_and_replay(p, upstream):
    k = key()
    r1 = p.post(body=ORDER, key=k)
    assert r1.status == 201, r1
    assert r1.header("Idempotent-Replayed") == "false"
    r2 = p.post(body=ORDER, key=k)
    assert r2.status == 201 and r2.header("Idempotent-Replayed") == "true", r2
    assert r2.body == r1.body
    assert upstream.count(key=k) == 1


def tls_opts(s, certs, **kw):
    o = {"url": "rediss://127.0.0.1:%d/0" % s.port, "tls_ca_file": certs.ca}
    o.update(kw)
    return o


# ------------------------------------------------------------------- TLS

def test_tls_verified_against_the_ca(proxy, upstream, servers, certs):
    s = servers(tls=certs)
    p = proxy(redis_opts=tls_opts(s, certs))
    assert wait_ready(p), p.readyz()
    first_and_replay(p, upstream)
    # the record went over TLS to that server (not some other Redis)
    assert s.proc.poll() is None
    m = p.admin("/metrics").body.decode()
    assert 'idemproxy_redis_node_up{node="127.0.0.1:%d",role="master"} 1' % s.port in m


def test_tls_as_tls_on_with_a_server_name(proxy, upstream, servers, certs):
    s = servers(tls=certs)
    p = proxy(redis_opts={"url": "redis://127.0.0.1:%d/0" % s.port, "tls": "on",
                          "tls_ca_file": certs.ca, "tls_server_name": "localhost"})
    assert wait_ready(p), p.readyz()
    first_and_replay(p, upstream)


@pytest.mark.parametrize("store_error", ["reject", "pass"])
def test_tls_wrong_ca_refused_and_said(proxy, upstream, servers, certs, store_error):
    """A server whose certificate the CA did not sign is never used: /readyz
    and the log say "certificate verify failed"; requests get row 10."""
    s = servers(tls=certs)
    p = proxy(routes={"orders": {"on_store_error": store_error}},
              redis_opts=tls_opts(s, certs, tls_ca_file=certs.other_ca))
    st, j = p.readyz()
    assert st == 503 and "certificate verify failed" in j["reason"], j
    assert "127.0.0.1:%d" % s.port in j["reason"], j
    k = key()
    r = p.post(body=ORDER, key=k)
    if store_error == "reject":
        assert r.status == 503 and r.code() == "STORE_UNAVAILABLE", r
        assert upstream.count(key=k) == 0
    else:
        assert r.status == 201 and r.header("Idempotent-Replayed") is None, r
        assert upstream.count(key=k) == 1
    assert "certificate verify failed" in p.stderr()


def test_tls_name_mismatch_refused(proxy, servers, certs):
    s = servers(tls=certs)
    p = proxy(redis_opts=tls_opts(s, certs, tls_server_name="redis.other.example"))
    st, j = p.readyz()
    assert st == 503 and "certificate verify failed (hostname mismatch)" in j["reason"], j


def test_tls_plain_client_against_tls_server_is_not_ready(proxy, servers, certs):
    s = servers(tls=certs)
    p = proxy(redis_opts={"url": "redis://127.0.0.1:%d/0" % s.port})
    st, j = p.readyz()
    assert st == 503, j
    assert p.post(body=ORDER, key=key()).status == 503


def test_mutual_tls(proxy, upstream, servers, certs):
    """A server that requires client certificates: refused without one,
    served with tls_cert_file/tls_key_file."""
    s = servers(tls=certs, auth_clients="yes")
    without = proxy(redis_opts=tls_opts(s, certs))
    st, j = without.readyz()
    assert st == 503, j
    assert without.post(body=ORDER, key=key()).status == 503
    with_cert = proxy(redis_opts=tls_opts(s, certs, tls_cert_file=certs.client,
                                          tls_key_file=certs.client_key))
    assert wait_ready(with_cert), with_cert.readyz()
    first_and_replay(with_cert, upstream)


def test_check_refuses_bad_tls_files(proxy, certs, tmp_path):
    """-t loads the TLS files as a start would, and names file and line."""
    import subprocess
    from conftest import BIN
    p = proxy(start=False, redis_opts={"url": "rediss://127.0.0.1:1/0",
                                       "tls_cert_file": certs.client,
                                       "tls_key_file": certs.server_key})
    out = subprocess.run([BIN, "-t", "-c", p.conf], capture_output=True, timeout=10)
    assert out.returncode == 1, out
    err = out.stderr.decode()
    lines = open(p.conf).read().splitlines()
    line = next(i + 1 for i, l in enumerate(lines) if l.startswith("tls_key_file"))
    assert ("%s:%d: [redis] tls_key_file: does not match tls_cert_file" % (p.conf, line)) in err, err
    p2 = proxy(start=False, redis_opts={"url": "rediss://127.0.0.1:1/0",
                                        "tls_ca_file": certs.client_key})
    out = subprocess.run([BIN, "-t", "-c", p2.conf], capture_output=True, timeout=10)
    assert out.returncode == 1 and "[redis] tls_ca_file: not a PEM file" in out.stderr.decode()


# ------------------------------------------------------------------- ACL

def acl_line():
    """The ACL line the docs tell users to paste (README.md or doc/*.md)."""
    for path in [os.path.join(ROOT, "README.md")] + sorted(glob.glob(os.path.join(ROOT, "doc", "*.md"))):
        with open(path) as f:
            m = re.search(r"^ACL SETUSER idem .*$", f.read(), re.M)
        if m:
            return m.group(0)
    raise AssertionError("no `ACL SETUSER idem ...` line in README.md or doc/*.md")


def make_user(s, password):
    words = acl_line().split()[2:]           # after ACL SETUSER
    words = [(">" + password if w.startswith(">") else w) for w in words]
    assert s.cmd("ACL", "SETUSER", *words) == "OK"


@pytest.mark.parametrize("layout", ["1", "2"])
def test_acl_least_privilege_user(proxy, upstream, redis, layout):
    """idemproxy runs as a user allowed only the documented commands and
    only key_prefix's keys: claims, replays, releases, the record API and
    /readyz all work, with either record layout."""
    make_user(redis, "s3cret-pw")
    # the user is as narrow as it says
    with resp.RedisClient(redis.port) as c:
        c.cmd("AUTH", "idem", "s3cret-pw")
        with pytest.raises(resp.RedisError):
            c.cmd("GET", "idem-not-prefixed")
        with pytest.raises(resp.RedisError):
            c.cmd("FLUSHALL")
        with pytest.raises(resp.RedisError):
            c.cmd("KEYS", "*")
    p = proxy(routes={"orders": {"lease": "5s"}},
              redis_opts={"username": "idem", "password": "s3cret-pw", "record_layout": layout})
    assert wait_ready(p), p.readyz()
    first_and_replay(p, upstream)
    k = key()
    r = p.post(body=ORDER, key=k, headers={"X-Test-Status": "503"})   # released
    assert r.status == 503
    r = p.post(body=ORDER, key=k)
    assert r.status == 201 and r.header("Idempotent-Replayed") == "false", r
    assert p.admin("/records?route=orders&key=" + k).status == 200
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", p.admin_port, timeout=5)
    c.request("DELETE", "/records?route=orders&key=" + k)
    assert c.getresponse().status == 200
    assert "NOPERM" not in p.stderr()


def test_acl_url_user_and_password(proxy, upstream, redis):
    make_user(redis, "p@ss:word")
    p = proxy(redis_opts={"url": "redis://idem:p%%40ss%%3Aword@127.0.0.1:%d/0" % redis.port})
    assert wait_ready(p), p.readyz()
    first_and_replay(p, upstream)


def test_acl_wrong_password(proxy, upstream, redis):
    make_user(redis, "right-password")
    p = proxy(redis_opts={"username": "idem", "password": "wrong-password"})
    st, j = p.readyz()
    assert st == 503 and "authentication failed" in j["reason"] and "WRONGPASS" in j["reason"], j
    k = key()
    r = p.post(body=ORDER, key=k)
    assert r.status == 503 and r.code() == "STORE_UNAVAILABLE", r
    assert upstream.count(key=k) == 0
    err = p.stderr()
    assert "authentication failed" in err
    assert "wrong-password" not in err and "right-password" not in err


def test_password_changed_by_reload(proxy, upstream, redis):
    """A new password applies from the next connection: no restart."""
    redis.cmd("CONFIG", "SET", "requirepass", "old-pw")
    p = proxy(redis_opts={"password": "old-pw"})
    assert wait_ready(p), p.readyz()
    first_and_replay(p, upstream)
    resp.command(redis.port, "CONFIG", "SET", "requirepass", "new-pw", password="old-pw")
    args, kw = p.args
    kw = dict(kw)
    kw["redis_opts"] = dict(kw.get("redis_opts") or {}, password="new-pw")
    p.write_config(args, **kw)
    p.hup()
    wait_until(lambda: "config reloaded" in p.stderr(), 5)
    # drop idemproxy's connections: they come back with the new password
    resp.command(redis.port, "CLIENT", "KILL", "TYPE", "normal", password="new-pw")
    assert wait_ready(p), p.readyz()
    first_and_replay(p, upstream)
    assert "change only on restart" not in p.stderr()


def test_reload_names_restart_only_options(proxy, upstream, redis, tmp_path):
    """One warning names every restart-only option that changed; they keep
    their running values (still the same Redis, the same number of
    workers) while the rest applies (the route's new replay_status)."""
    p = proxy(routes={"orders": {}}, proxy_opts={"workers": "2", "upstream_connections": "8"})
    k = key()
    assert p.post(body=ORDER, key=k).status == 201
    args, kw = p.args
    kw = dict(kw)
    kw["proxy_opts"] = dict(kw.get("proxy_opts") or {}, workers="3", upstream_connections="9")
    kw["redis_opts"] = dict(kw.get("redis_opts") or {}, url="redis://127.0.0.1:1/0",
                            key_prefix="other:")
    p.write_config({"orders": {"replay_status": "200"}}, **kw)
    p.hup()
    assert wait_until(lambda: "config reloaded" in p.stderr(), 5)
    warn = [l for l in p.stderr().splitlines() if "change only on restart" in l]
    assert len(warn) == 1, warn
    assert ('"options":"[proxy] upstream_connections, [proxy] workers, [redis] url, '
            '[redis] key_prefix"') in warn[0], warn
    r = p.post(body=ORDER, key=k)            # the same Redis and prefix: a replay
    assert r.status == 200 and r.header("Idempotent-Replayed") == "true", r
    assert upstream.count(key=k) == 1
