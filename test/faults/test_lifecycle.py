"""Redis setup and config reloads around live requests: lifecycle bugs
found by a review, each test failed on the code before its fix."""
import socket
import threading
import time

from conftest import new_key, wait_until


def test_setup_that_never_answers_is_dropped_and_redis_reconnected(cluster):
    """A Redis connection that is accepted but never answers its setup
    (AUTH/SELECT/SCRIPT LOAD) has no timeout: store.c keeps it forever, so
    the proxy answers 503 STORE_UNAVAILABLE (and /readyz 503) forever, even
    after a working Redis listens on the same address. A half-open
    connection like this is what a partition, or a Redis node that died
    without a RST, leaves behind while the proxy reconnects."""
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
