"""A real Prometheus (Debian's prometheus package, from scripts/deps.sh)
scrapes a running idemproxy and evaluates conf/prometheus/idemproxy-alerts.yaml
against it, and one alert is made to fire on purpose.

idemproxy runs with the Kubernetes ConfigMap's config (addresses moved to
loopback) in front of the e2e test upstream, with a real redis-server as
conf/kubernetes runs it; Prometheus gets its own temporary directory and a
free 127.0.0.1 port, scrapes every second and evaluates every second. The
rules are the real ones; only their `for:` is cut to 1s in the copy it
loads, so that an alert fires within seconds instead of minutes. Redis is
stopped: protected requests get 503 STORE_UNAVAILABLE, and
IdemproxyStoreErrors must fire, as Prometheus's HTTP API reports it.
Every process is stopped at the end; each wait is bounded.
"""
import json
import os
import shutil
import subprocess
import time
import urllib.parse

import yaml

from test_manifests import (ALERTS, BIN, HOST, PASSWORD, PY, UPSTREAM_PY, call,
                            free_port, load_docs, local_idemproxy_config, start_redis,
                            stop, wait_for)

JOB = "orders-api"


def prom_get(port, path, **params):
    """GET Prometheus's HTTP API; the "data" of a success."""
    q = "?" + urllib.parse.urlencode(params) if params else ""
    status, _, body = call(port, "GET", path + q, timeout=5)
    doc = json.loads(body)
    assert status == 200 and doc.get("status") == "success", (status, body[:500])
    return doc["data"]


def alerts(port, name):
    """The alerts called name that Prometheus holds now (pending or firing)."""
    return [a for a in prom_get(port, "/api/v1/alerts")["alerts"]
            if a["labels"].get("alertname") == name]


def rules_with_short_for(path):
    """The alert rules as they are, but for: 1s wherever they wait."""
    doc = load_docs(ALERTS)[0]
    n = 0
    for g in doc["groups"]:
        for r in g["rules"]:
            n += 1
            if "for" in r:
                r["for"] = "1s"
    path.write_text(yaml.safe_dump(doc))
    return n


def test_prometheus_scrapes_idemproxy_and_the_store_alert_fires(tmp_path):
    prometheus = shutil.which("prometheus")
    assert prometheus, "prometheus is missing: scripts/deps.sh installs Debian's prometheus"
    procs = {}
    try:
        rport = free_port()
        procs["redis"] = start_redis(tmp_path, rport)
        uport = free_port()
        procs["upstream"] = subprocess.Popen([PY, UPSTREAM_PY, str(uport)],
                                             stdout=subprocess.DEVNULL,
                                             stderr=subprocess.DEVNULL)
        assert wait_for(lambda: call(uport, "GET", "/__log", timeout=1)[0] == 200, 15,
                        procs["upstream"]), "upstream did not start"
        pport, aport = free_port(), free_port()
        conf = tmp_path / "idemproxy.conf"
        conf.write_text(local_idemproxy_config(pport, aport, uport, rport))
        with open(tmp_path / "idemproxy.stderr", "wb") as err:
            procs["idemproxy"] = subprocess.Popen(
                [BIN, "-c", str(conf)], stdout=err, stderr=subprocess.STDOUT,
                env=dict(os.environ, REDIS_PASSWORD=PASSWORD))
        assert wait_for(lambda: call(aport, "GET", "/readyz", timeout=2)[0] == 200, 20,
                        procs["idemproxy"]), (tmp_path / "idemproxy.stderr").read_text()[-2000:]

        n_rules = rules_with_short_for(tmp_path / "rules.yaml")
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(tmp_path / "rules.yaml")],
            "scrape_configs": [{"job_name": JOB, "metrics_path": "/metrics",
                                "static_configs": [{"targets": ["%s:%d" % (HOST, aport)]}]}],
        }))
        mport = free_port()
        with open(tmp_path / "prometheus.log", "wb") as log:
            procs["prometheus"] = subprocess.Popen(
                [prometheus, "--config.file=%s" % (tmp_path / "prometheus.yml"),
                 "--storage.tsdb.path=%s" % (tmp_path / "tsdb"),
                 "--web.listen-address=%s:%d" % (HOST, mport), "--log.level=warn"],
                stdout=log, stderr=subprocess.STDOUT)
        prom_log = lambda: (tmp_path / "prometheus.log").read_text()[-3000:]
        assert wait_for(lambda: call(mport, "GET", "/-/ready", timeout=1)[0] == 200, 30,
                        procs["prometheus"]), prom_log()

        # it scrapes idemproxy, and holds every rule, evaluated without error
        up = lambda: prom_get(mport, "/api/v1/query", query='up{job="%s"}' % JOB)["result"]
        assert wait_for(lambda: [r for r in up() if r["value"][1] == "1"], 20), prom_log()
        rules = [r for g in prom_get(mport, "/api/v1/rules")["groups"] for r in g["rules"]]
        assert len(rules) == n_rules

        # healthy traffic, scraped a few times: no store alert
        key = iter(range(10 ** 6))
        post = lambda: call(pport, "POST", "/v1/orders", b'{"sku":"book"}',
                            {"Idempotency-Key": "prom-%d" % next(key),
                             "Content-Type": "application/json"})
        assert all(post()[0] == 201 for _ in range(5))
        first = 'idemproxy_requests_total{job="%s",route="orders",outcome="first"}' % JOB
        assert wait_for(lambda: [r for r in prom_get(mport, "/api/v1/query", query=first)["result"]
                                 if r["value"][1] == "5"], 20), prom_log()
        time.sleep(2)                       # two more evaluations
        assert alerts(mport, "IdemproxyStoreErrors") == []
        assert all(r["health"] == "ok" for r in
                   [r for g in prom_get(mport, "/api/v1/rules")["groups"] for r in g["rules"]]), \
            [(r["name"], r.get("lastError")) for g in prom_get(mport, "/api/v1/rules")["groups"]
             for r in g["rules"] if r["health"] != "ok"]

        # Redis goes away: protected requests get 503, the alert fires
        stop(procs.pop("redis"))
        deadline = time.monotonic() + 45
        firing = []
        while time.monotonic() < deadline and not firing:
            status, _, body = post()
            assert status == 503 and b"STORE_UNAVAILABLE" in body, (status, body)
            firing = [a for a in alerts(mport, "IdemproxyStoreErrors") if a["state"] == "firing"]
            time.sleep(0.2)
        assert firing, (alerts(mport, "IdemproxyStoreErrors"), prom_log())
        a = firing[0]
        assert a["labels"] == {"alertname": "IdemproxyStoreErrors", "job": JOB,
                               "severity": "critical"}, a
        assert a["annotations"]["summary"] == "idemproxy cannot use Redis (%s)" % JOB, a
    finally:
        for name in ("prometheus", "idemproxy", "upstream", "redis"):
            stop(procs.get(name))
