"""A real retrying client library from npm (axios with axios-retry,
test/clients/retry-post.js; `make e2e` installs it with npm ci from
test/clients/package-lock.json) against idemproxy, for the settings the
README recommends per kind of client:

- a first attempt that times out (the upstream is slower than the client's
  per-attempt timeout): with in_flight = wait the client ends with the
  original answer and the upstream ran once; a client that also retries
  409 and honours Retry-After gets there with in_flight = reject too, and
  one that does not is left with the 409 although the operation ran;
- a key reused with another body: a client that retries every 409 sends it
  again and again, unless mismatch_status = 422.
"""
import json
import os
import shutil
import subprocess

import pytest

from conftest import ROOT, request

CLIENTS = os.path.join(ROOT, "test", "clients")
ORDER = {"sku": "book", "qty": 1}


def retrying_post(p, key, body, retry409=False, timeout_ms=1000, retries=3):
    """One POST through axios-retry; what the client ended with."""
    node = shutil.which("node")
    assert node, "node is missing: scripts/deps.sh installs nodejs and npm"
    assert os.path.isdir(os.path.join(CLIENTS, "node_modules", "axios-retry")), \
        "test/clients/node_modules is missing: make e2e runs npm ci there"
    opt = {"url": "http://127.0.0.1:%d/v1/orders" % p.port, "key": key, "body": body,
           "timeoutMs": timeout_ms, "retries": retries, "retry409": retry409}
    r = subprocess.run([node, os.path.join(CLIENTS, "retry-post.js"), json.dumps(opt)],
                       capture_output=True, text=True, timeout=60, cwd=CLIENTS)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def set_delay(upstream, seconds):
    """Every execution at the test upstream takes this long (0: none)."""
    request(upstream.port, "POST", "/__delay", {"sleep": seconds}, timeout=5)


def executed_once(upstream, key, got):
    """The upstream ran key once, and got carries that execution's answer."""
    runs = [e for e in upstream.log() if e["key"] == key]
    assert len(runs) == 1, runs
    assert json.loads(got["body"])["n"] == runs[0]["n"], got


def test_timed_out_attempt_with_in_flight_wait(proxy, upstream):
    p = proxy({"orders": {"in_flight": "wait", "wait_timeout": "10s"}})
    set_delay(upstream, 1.5)                   # the client gives an attempt 1 s
    got = retrying_post(p, "axios-wait-1", ORDER)
    set_delay(upstream, 0)
    assert got["retries"] and got["retries"][0]["why"] == "ECONNABORTED", got
    assert got["status"] == 201 and got["replayed"] == "true", got
    executed_once(upstream, "axios-wait-1", got)


@pytest.mark.parametrize("retry409,final", [(True, 201), (False, 409)],
                         ids=["retries-409", "gives-up-on-409"])
def test_timed_out_attempt_with_in_flight_reject(proxy, upstream, retry409, final):
    p = proxy({"orders": {"in_flight": "reject", "lease": "20s"}},
              proxy_opts={"upstream_timeout": "10s"})
    key = "axios-reject-%s" % retry409
    set_delay(upstream, 3)      # its first retry comes well before the answer
    got = retrying_post(p, key, ORDER, retry409=retry409, retries=6)
    set_delay(upstream, 0)
    assert got["retries"][0]["why"] == "ECONNABORTED", got
    assert got["status"] == final, got
    if final == 201:
        # it waited as told between the 409s, and ended with the answer
        told = [r for r in got["retries"] if r["why"] == 409]
        assert told and all(r["retryAfter"] for r in told), got
        executed_once(upstream, key, got)
    else:
        assert json.loads(got["body"])["error"]["code"] == "REQUEST_PROCESSING", got
        assert upstream.count(key=key) == 1


@pytest.mark.parametrize("mismatch_status,sent", [("409", 4), ("422", 1)])
def test_reused_key_with_a_client_that_retries_409(proxy, upstream, mismatch_status, sent):
    p = proxy({"orders": {"mismatch_status": mismatch_status}})
    assert p.post(body=ORDER, key="axios-reused").status == 201
    got = retrying_post(p, "axios-reused", {"sku": "pen", "qty": 2}, retry409=True)
    assert got["status"] == int(mismatch_status), got
    assert json.loads(got["body"])["error"]["code"] == "IDEMPOTENCY_KEY_MISMATCH", got
    assert 1 + len(got["retries"]) == sent, got
    assert upstream.count(key="axios-reused") == 1

