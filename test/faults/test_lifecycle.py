"""Redis setup and config reloads around live requests: two lifecycle bugs
found by a review, each test failed on the code before its fix."""
import socket
import threading
import time

from conftest import new_key, wait_until


def test_setup_that_never_answers_is_dropped_and_redis_reconnected(cluster):
    """A Redis connection that is accepted but never answers its setup
    (AUTH/SELECT/SCRIPT LOAD) had no timeout: store.c kept it forever, so
    the proxy answered 503 STORE_UNAVAILABLE (and /readyz 503) forever, even
    after a working Redis listened on the same address. A half-open
    connection like this is what a partition, or a Redis node that died
    without a RST, leaves behind while the proxy reconnects. Now it is
    dropped after the setup timeout and the proxy is ready again."""
    c = cluster
    port = c.redis.port
    c.redis.stop()
    # a "Redis" that accepts connections and never answers (black hole)
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", port))
    ls.listen(16)
    held = []

    def accept():
        while True:
            try:
                s, _ = ls.accept()
            except OSError:
                return
            held.append(s)

    threading.Thread(target=accept, daemon=True).start()
    try:
        p = c.proxy(proxy_opts={"workers": "1"})
        assert wait_until(lambda: len(held) >= 2, 5), "proxy did not connect"
        ls.close()                       # the black hole stops accepting...
        c.redis.start()                  # ...and a real Redis takes the port
        assert c.redis.port == port
        # [redis] timeout is 500ms and the reconnect backoff at most 2s:
        # 10s is ample for the proxy to give up the dead connection.
        ready = wait_until(lambda: p.admin("/readyz", timeout=2).status == 200, 10, 0.2)
        a = c.send(p, new_key("after"))
        assert ready, "still not ready 10s after Redis came back: %r" % (
            p.admin("/readyz").body,)
        assert a.status == 201, a
    finally:
        try:
            ls.close()
        except OSError:
            pass
        for s in held:
            s.close()
    c.check(max_exec=1)


def test_reload_keeps_a_live_requests_upstream_timeout_below_its_lease(cluster):
    """A request that started under the old config claims with the old
    route's lease (its cfgref) and must be forwarded with the old
    upstream_timeout too: the reload below raises both, each config passes
    `idemproxy -t`. The upstream call used to take the new timeout at once,
    so it could outlive the request's claim (a 4 s call on a 2 s lease was
    answered 201 while a retry at 3 s claimed the key again and ran it a
    second time). Now the call is bounded by its own config's 1 s: 504,
    claim kept inside the lease (row 14), the retry 409."""
    c = cluster
    old_route = {"orders": dict(lease="2s", ttl="1h")}
    new_route = {"orders": dict(lease="10s", ttl="1h")}
    redis_opts = {"timeout": "3s"}           # the paused claim must not time out
    p = c.proxy(routes=old_route, proxy_opts={"upstream_timeout": "1s", "workers": "2"},
                redis_opts=redis_opts)
    k = new_key("reload-lease")
    out = {}
    # hold the claim in Redis while the reload is applied
    c.redis.cmd("CLIENT", "PAUSE", "1200")
    t = threading.Thread(target=lambda: out.setdefault(
        "w", c.send(p, k, headers={"X-Test-Sleep": "1.5"}, timeout=15)))
    t.start()
    time.sleep(0.2)
    p.write_config(new_route, proxy_opts={"upstream_timeout": "8s", "workers": "2"},
                   redis_opts=redis_opts)
    p.hup()
    assert wait_until(lambda: "config reloaded" in p.stderr(), 1.0, 0.02)
    # the claim goes through now (lease 2s, the old route's)
    assert wait_until(lambda: len(c.executions(k)) == 1, 3, 0.02)
    t.join(15)
    w = out["w"]
    assert w.status == 504 and w.code() == "UPSTREAM_TIMEOUT", w
    retry = c.send(p, k, timeout=15)         # inside the 2 s lease
    assert retry.status == 409 and retry.code() == "REQUEST_PROCESSING", retry
    assert "claim lost" not in p.stderr(), p.stderr()
    time.sleep(0.7)                          # the upstream's 1.5 s are over
    assert len(c.executions(k)) == 1
    # (the claim's `created` is from before the pause: let it expire before
    # the checker compares its age with the lease)
    assert wait_until(lambda: c.redis.cmd("DBSIZE") == 0, 5, 0.1)
    c.check(max_exec=1)
