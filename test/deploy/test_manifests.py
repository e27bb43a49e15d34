"""Checks of the deployment files under conf/: the Kubernetes example
(conf/kubernetes), the Grafana dashboard and the Prometheus alert rules.

Static checks read the files (PyYAML, Debian's python3-yaml). The live
checks run what the files describe, on 127.0.0.1 only: the ConfigMap's
idemproxy.conf through `idemproxy -t`, the Redis ConfigMap's redis.conf with
the StatefulSet's own command line through a real redis-server, and the real
idemproxy binary with the ConfigMap's config (addresses moved to loopback)
in front of the e2e test upstream. Its /metrics is the list of metric names
the dashboard and the alerts may use.

Run: IDEMPROXY_BIN=proxy/idemproxy /usr/bin/python3 -m pytest -q test/deploy
"""
import glob
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest
import yaml

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from ports import free_port  # noqa: E402  (test/ports.py)
import resp  # noqa: E402  (test/resp.py)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CONF = os.path.join(ROOT, "conf")
K8S = os.path.join(CONF, "kubernetes")
DASHBOARD = os.path.join(CONF, "grafana", "idemproxy-dashboard.json")
ALERTS = os.path.join(CONF, "prometheus", "idemproxy-alerts.yaml")
DOCKERFILE = os.path.join(ROOT, "Dockerfile")
UPSTREAM_PY = os.path.join(ROOT, "test", "e2e", "upstream.py")
BIN = os.environ.get("IDEMPROXY_BIN") or os.path.join(ROOT, "proxy", "idemproxy")
REDIS_BIN = shutil.which("redis-server") or "/usr/bin/redis-server"
PY = sys.executable or "/usr/bin/python3"
HOST = "127.0.0.1"
PASSWORD = "deploytest0123456789abcdef"

# Metrics the dashboard and alerts may use before the binary exposes them
# (none now: idemproxy_oldest_request_age_seconds and idemproxy_observed_total
# have landed and are checked like the rest).
PENDING_METRICS = {}
# Labels Prometheus attaches at scrape time, not idemproxy.
TARGET_LABELS = {"instance", "job", "namespace", "pod", "container"}


# ------------------------------------------------------------ file helpers

def yaml_files():
    out = []
    for ext in ("yaml", "yml"):
        out += glob.glob(os.path.join(CONF, "**", "*." + ext), recursive=True)
    return sorted(out)


def load_docs(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def k8s_manifest_files():
    return sorted(p for p in glob.glob(os.path.join(K8S, "*.y*ml"))
                  if os.path.basename(p) not in ("kustomization.yaml", "kustomization.yml"))


def k8s_objects():
    objs = {}
    for p in k8s_manifest_files():
        for d in load_docs(p):
            objs[(d["kind"], d["metadata"]["name"])] = d
    return objs


def one(objs, kind):
    found = [d for (k, _), d in objs.items() if k == kind]
    assert len(found) == 1, "expected one %s in conf/kubernetes, found %d" % (kind, len(found))
    return found[0]


def parse_ini(text):
    """The subset of idemproxy's INI reading that the checks need:
    {section: {key: value}}, comments (; or # at the start of a line, or
    after white space) removed."""
    out, sect = {}, None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in ";#":
            continue
        if line.startswith("["):
            sect = line[1:line.index("]")].strip()
            out.setdefault(sect, {})
            continue
        k, _, v = line.partition("=")
        v = re.split(r"\s[;#]", v, maxsplit=1)[0].strip()
        out[sect][k.strip()] = v
    return out


def duration_s(v):
    m = re.fullmatch(r"(\d+)(ms|s|m|h)?", v)
    assert m, "bad duration %r" % v
    n, unit = int(m.group(1)), m.group(2) or "s"
    return n * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]


def k8s_quantity_bytes(v):
    m = re.fullmatch(r"(\d+)(Ki|Mi|Gi|k|M|G)?", str(v))
    assert m, "bad quantity %r" % v
    mult = {None: 1, "Ki": 1024, "Mi": 1024 ** 2, "Gi": 1024 ** 3,
            "k": 1000, "M": 1000 ** 2, "G": 1000 ** 3}[m.group(2)]
    return int(m.group(1)) * mult


def redis_bytes(v):
    m = re.fullmatch(r"(\d+)(b|k|kb|m|mb|g|gb)?", v.lower())
    assert m, "bad redis memory %r" % v
    mult = {None: 1, "b": 1, "k": 1000, "kb": 1024, "m": 1000 ** 2, "mb": 1024 ** 2,
            "g": 1000 ** 3, "gb": 1024 ** 3}[m.group(2)]
    return int(m.group(1)) * mult


def hostport(v):
    host, _, port = v.rpartition(":")
    return host, int(port)


def deployment():
    return one(k8s_objects(), "Deployment")


def container(dep, name):
    for c in dep["spec"]["template"]["spec"]["containers"]:
        if c["name"] == name:
            return c
    raise AssertionError("no container %r in the Deployment" % name)


def container_port(c, port):
    """A probe's or Service's port (number or name) as a number, looked up
    in container c's ports."""
    if isinstance(port, int):
        return port
    for p in c.get("ports", []):
        if p.get("name") == port:
            return p["containerPort"]
    raise AssertionError("container %s has no port named %r" % (c["name"], port))


def idemproxy_configmap_text():
    dep = deployment()
    objs = k8s_objects()
    vols = {v["name"]: v for v in dep["spec"]["template"]["spec"]["volumes"]}
    mounts = [m for m in container(dep, "idemproxy")["volumeMounts"]
              if m["mountPath"] == "/etc/idemproxy"]
    assert mounts, "the idemproxy container does not mount /etc/idemproxy"
    cm_name = vols[mounts[0]["name"]]["configMap"]["name"]
    cm = objs.get(("ConfigMap", cm_name))
    assert cm is not None, "the Deployment mounts ConfigMap %s, which is not in conf/kubernetes" % cm_name
    assert "idemproxy.conf" in cm["data"], "ConfigMap %s has no idemproxy.conf" % cm_name
    return cm["data"]["idemproxy.conf"]


def idemproxy_config():
    return parse_ini(idemproxy_configmap_text())


def redis_statefulset():
    return one(k8s_objects(), "StatefulSet")


def redis_conf_text():
    sts = redis_statefulset()
    objs = k8s_objects()
    spec = sts["spec"]["template"]["spec"]
    c = spec["containers"][0]
    conf_path = next(a for a in c["command"] + c.get("args", []) if a.endswith(".conf"))
    mount = next(m for m in c["volumeMounts"] if conf_path.startswith(m["mountPath"] + "/"))
    vol = next(v for v in spec["volumes"] if v["name"] == mount["name"])
    cm = objs[("ConfigMap", vol["configMap"]["name"])]
    return cm["data"][os.path.basename(conf_path)]


def redis_conf():
    out = {}
    for line in redis_conf_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            k, _, v = line.partition(" ")
            out[k.lower()] = v.strip().strip('"')
    return out


# ------------------------------------------------------------ YAML, structure

@pytest.mark.parametrize("path", yaml_files(), ids=lambda p: os.path.relpath(p, ROOT))
def test_yaml_parses(path):
    docs = load_docs(path)
    assert docs, "%s has no YAML document" % path
    for d in docs:
        assert isinstance(d, dict), "%s: a document is not a mapping" % path


@pytest.mark.parametrize("path", k8s_manifest_files(), ids=os.path.basename)
def test_k8s_documents_have_identity(path):
    for i, d in enumerate(load_docs(path)):
        for k in ("apiVersion", "kind"):
            assert d.get(k), "%s document %d has no %s" % (path, i, k)
        assert (d.get("metadata") or {}).get("name"), \
            "%s document %d (%s) has no metadata.name" % (path, i, d.get("kind"))


def test_kustomization_lists_every_manifest():
    kust = load_docs(os.path.join(K8S, "kustomization.yaml"))[0]
    assert kust.get("apiVersion", "").startswith("kustomize.config.k8s.io/")
    assert kust.get("kind") == "Kustomization"
    listed = set(kust.get("resources") or [])
    present = {os.path.basename(p) for p in k8s_manifest_files()}
    assert listed - present == set(), "kustomization lists missing files: %s" % sorted(listed - present)
    assert present - listed == set(), "kustomization does not list: %s" % sorted(present - listed)
    # the image it rewrites is the sidecar's
    images = {c["image"].split(":")[0]
              for c in deployment()["spec"]["template"]["spec"]["containers"]}
    for im in kust.get("images") or []:
        assert im["name"] in images, "kustomization rewrites image %s, which no container uses" % im["name"]


def test_kustomize_renders():
    kubectl = shutil.which("kubectl")
    kustomize = shutil.which("kustomize")
    if not (kubectl or kustomize):
        pytest.skip("neither kubectl nor kustomize is installed")
    cmd = [kubectl, "kustomize", K8S] if kubectl else [kustomize, "build", K8S]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    kinds = sorted(d["kind"] for d in yaml.safe_load_all(r.stdout) if d)
    assert kinds == sorted(k for k, _ in k8s_objects()), kinds


# ------------------------------------------------------------ wiring

def test_idemproxy_config_is_valid(tmp_path):
    conf = tmp_path / "idemproxy.conf"
    conf.write_text(idemproxy_configmap_text())
    env = dict(os.environ, REDIS_PASSWORD=PASSWORD)
    r = subprocess.run([BIN, "-t", "-c", str(conf)], env=env, capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, "idemproxy -t: %s%s" % (r.stdout, r.stderr)
    # and the password really comes from the environment
    env.pop("REDIS_PASSWORD")
    r = subprocess.run([BIN, "-t", "-c", str(conf)], env=env, capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 1 and "REDIS_PASSWORD" in r.stdout + r.stderr, r.stdout + r.stderr


def test_probes_use_the_admin_listener():
    cfg = idemproxy_config()
    host, port = hostport(cfg["admin"]["listen"])
    assert host not in ("127.0.0.1", "localhost", "::1"), \
        "[admin] listen = %s: the kubelet probes the pod IP, a loopback listener fails every probe" % cfg["admin"]["listen"]
    c = container(deployment(), "idemproxy")
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = (c.get(probe) or {}).get("httpGet")
        assert get, "idemproxy has no %s.httpGet" % probe
        assert get["path"] == path, "%s path %s, expected %s" % (probe, get["path"], path)
        assert container_port(c, get["port"]) == port, \
            "%s port %s is not the [admin] listen port %d" % (probe, get["port"], port)


def test_service_targets_the_proxy_listener():
    cfg = idemproxy_config()
    host, port = hostport(cfg["proxy"]["listen"])
    assert host not in ("127.0.0.1", "localhost", "::1"), \
        "[proxy] listen = %s is loopback: the Service cannot reach it" % cfg["proxy"]["listen"]
    dep = deployment()
    labels = dep["spec"]["template"]["metadata"]["labels"]
    svcs = [d for (k, _), d in k8s_objects().items() if k == "Service"
            and all(labels.get(a) == b for a, b in d["spec"].get("selector", {}).items())]
    assert len(svcs) == 1, "expected one Service selecting the Deployment's pods, found %d" % len(svcs)
    svc = svcs[0]
    c = container(dep, "idemproxy")
    for p in svc["spec"]["ports"]:
        assert p.get("name"), "Service ports should be named"
        assert container_port(c, p["targetPort"]) == port, \
            "Service port %s targets %s, not [proxy] listen port %d" % (p["name"], p["targetPort"], port)
    # nothing reaches the API around idemproxy
    up_host, _ = hostport(cfg["proxy"]["upstream"][len("http://"):])
    assert up_host == "127.0.0.1", "the upstream should be the API on pod loopback"
    for other in dep["spec"]["template"]["spec"]["containers"]:
        if other["name"] != "idemproxy":
            assert not other.get("ports"), "container %s exposes ports" % other["name"]


def test_secret_and_env_wiring():
    objs = k8s_objects()
    refs = []
    for c in deployment()["spec"]["template"]["spec"]["containers"]:
        refs += [(c["name"], e) for e in c.get("env", [])]
    for c in redis_statefulset()["spec"]["template"]["spec"]["containers"]:
        refs += [(c["name"], e) for e in c.get("env", [])]
    used = set()
    for cname, e in refs:
        ref = (e.get("valueFrom") or {}).get("secretKeyRef")
        if not ref:
            continue
        sec = objs.get(("Secret", ref["name"]))
        assert sec is not None, "%s: Secret %s is not in conf/kubernetes" % (cname, ref["name"])
        keys = set(sec.get("stringData") or {}) | set(sec.get("data") or {})
        assert ref["key"] in keys, "Secret %s has no key %s" % (ref["name"], ref["key"])
        used.add((cname, e["name"]))
    assert ("idemproxy", "REDIS_PASSWORD") in used, "idemproxy gets no REDIS_PASSWORD from a Secret"
    assert idemproxy_config()["redis"].get("password") == "${REDIS_PASSWORD}"
    c = redis_statefulset()["spec"]["template"]["spec"]["containers"][0]
    args = c["command"] + c.get("args", [])
    assert "--requirepass" in args and args[args.index("--requirepass") + 1] == "$(REDIS_PASSWORD)"
    assert (c["name"], "REDIS_PASSWORD") in used
    # the config's Redis address is the StatefulSet's pod behind its Service
    url = idemproxy_config()["redis"]["url"]
    m = re.fullmatch(r"redis://([^:/@]+):(\d+)(/\d+)?", url)
    assert m, url
    sts = redis_statefulset()
    assert m.group(1) in ("%s-0.%s" % (sts["metadata"]["name"], sts["spec"]["serviceName"]),
                          sts["spec"]["serviceName"]), url
    svc = objs[("Service", sts["spec"]["serviceName"])]
    assert svc["spec"].get("clusterIP") == "None", "the StatefulSet's Service should be headless"
    assert int(m.group(2)) in [p["port"] for p in svc["spec"]["ports"]]


def test_shutdown_fits_the_grace_period():
    cfg = idemproxy_config()
    spec = deployment()["spec"]["template"]["spec"]
    c = container(deployment(), "idemproxy")
    cmd = c["lifecycle"]["preStop"]["exec"]["command"]
    assert cmd[0] in ("sleep", "/bin/sleep"), cmd
    pre_stop = float(cmd[1])
    drain = duration_s(cfg["proxy"]["drain_timeout"])
    grace = spec["terminationGracePeriodSeconds"]
    assert grace > pre_stop + drain, \
        "terminationGracePeriodSeconds %s <= preStop %s + drain_timeout %s" % (grace, pre_stop, drain)
    assert drain >= duration_s(cfg["proxy"]["upstream_timeout"]), \
        "drain_timeout below upstream_timeout: a request in flight at SIGTERM can be cut off"


def test_security_context_matches_the_image():
    with open(DOCKERFILE) as f:
        users = re.findall(r"^USER\s+(\d+)", f.read(), re.M)
    assert users, "the Dockerfile sets no numeric USER"
    uid = int(users[-1].split(":")[0])
    dep = deployment()
    assert dep["spec"]["template"]["spec"]["securityContext"].get("runAsNonRoot") is True
    sc = container(dep, "idemproxy")["securityContext"]
    assert sc.get("runAsUser") == uid, "runAsUser %s, the image runs as %d" % (sc.get("runAsUser"), uid)
    assert sc.get("runAsNonRoot") is True
    assert sc.get("readOnlyRootFilesystem") is True
    assert sc.get("allowPrivilegeEscalation") is False
    res = container(dep, "idemproxy")["resources"]
    assert res["requests"]["memory"] and res["limits"]["memory"]


def test_redis_config_is_durable_and_never_evicts():
    rc = redis_conf()
    assert rc.get("maxmemory-policy") == "noeviction", \
        "maxmemory-policy %r: idemproxy's /readyz refuses anything but noeviction" % rc.get("maxmemory-policy")
    assert rc.get("appendonly") == "yes", "appendonly must be yes, or a Redis restart forgets claims"
    assert rc.get("appendfsync") in ("always", "everysec"), rc.get("appendfsync")
    assert "maxmemory" in rc, "set maxmemory, or Redis grows until the container is OOM-killed"
    sts = redis_statefulset()
    c = sts["spec"]["template"]["spec"]["containers"][0]
    limit = k8s_quantity_bytes(c["resources"]["limits"]["memory"])
    assert redis_bytes(rc["maxmemory"]) < limit, "maxmemory is not below the container's memory limit"
    data_dir = rc.get("dir", "/data")
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    claims = {t["metadata"]["name"] for t in sts["spec"].get("volumeClaimTemplates", [])}
    assert mounts.get(data_dir) in claims, "Redis' dir %s is not on a PersistentVolumeClaim" % data_dir


# ------------------------------------------------------------ processes



def wait_for(pred, timeout, proc=None):
    """pred() until true, at most timeout seconds; None at once if proc exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return None
        try:
            v = pred()
        except (OSError, RuntimeError, http.client.HTTPException):
            v = None            # not up yet (refused, LOADING, cut off)
        if v:
            return v
        time.sleep(0.05)
    return None


def call(port, method, path, body=None, headers=None, timeout=10):
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def redis_cmd(port, *args, password=None):
    """One command (test/resp.py), bulk replies decoded to str."""
    def text(v):
        if isinstance(v, bytes):
            return v.decode()
        return [text(x) for x in v] if isinstance(v, list) else v
    return text(resp.command(port, *args, password=password))


def stop(proc):
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def start_redis(tmp, port):
    """redis-server with the StatefulSet's own command line, the
    ConfigMap's redis.conf, and only the address and directory moved."""
    data = tmp / "redis-data"
    data.mkdir()
    conf = tmp / "redis.conf"
    # `dir` is applied while the file is read (a chdir), so it is moved in
    # the file itself; the other overrides follow on the command line.
    text, n = re.subn(r"(?m)^dir .*$", "dir %s" % data, redis_conf_text())
    assert n == 1, "redis.conf should set dir (the PersistentVolume's mount)"
    conf.write_text(text)
    c = redis_statefulset()["spec"]["template"]["spec"]["containers"][0]
    argv = []
    for a in c["command"] + c.get("args", []):
        a = a.replace("$(REDIS_PASSWORD)", PASSWORD)
        argv.append(str(conf) if a.endswith(".conf") else a)
    assert os.path.basename(argv[0]) == "redis-server", argv
    argv = [REDIS_BIN] + argv[1:] + ["--port", str(port), "--bind", HOST,
                                      "--daemonize", "no"]
    with open(tmp / "redis.log", "wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    ok = wait_for(lambda: redis_cmd(port, "PING", password=PASSWORD) == "PONG", 15, proc)
    if not ok:
        stop(proc)
        raise AssertionError("redis-server with conf/kubernetes' redis.conf did not start: %s"
                             % (tmp / "redis.log").read_text()[-2000:])
    return proc


def local_idemproxy_config(port, admin_port, upstream_port, redis_port):
    """The ConfigMap's idemproxy.conf with its four addresses on loopback."""
    return ini_replace(idemproxy_configmap_text(), {
        ("proxy", "listen"): "%s:%d" % (HOST, port),
        ("proxy", "upstream"): "http://%s:%d" % (HOST, upstream_port),
        ("redis", "url"): "redis://%s:%d/0" % (HOST, redis_port),
        ("admin", "listen"): "%s:%d" % (HOST, admin_port)})


def ini_replace(text, repl):
    """text (an idemproxy.conf) with the values of the (section, key) pairs
    of repl replaced; each must be there."""
    out, sect, done = [], None, set()
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("["):
            sect = s[1:s.index("]")].strip()
        elif "=" in s and s[0] not in ";#":
            k = s.split("=", 1)[0].strip()
            if (sect, k) in repl:
                line = "%s = %s" % (k, repl[(sect, k)])
                done.add((sect, k))
        out.append(line)
    assert done == set(repl), "the config lacks %s" % (set(repl) - done)
    return "\n".join(out) + "\n"


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """redis-server (as redis.yaml runs it), the e2e upstream, and idemproxy
    with the ConfigMap's config; yields (proxy port, admin port, upstream
    port, redis port). Every process is stopped at the end."""
    tmp = tmp_path_factory.mktemp("deploy")
    procs = []
    try:
        rport = free_port()
        procs.append(start_redis(tmp, rport))
        uport = free_port()
        up = subprocess.Popen([PY, UPSTREAM_PY, str(uport)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(up)
        assert wait_for(lambda: call(uport, "GET", "/__log", timeout=1)[0] == 200, 15, up), \
            "upstream did not start"
        pport, aport = free_port(), free_port()
        conf = tmp / "idemproxy.conf"
        conf.write_text(local_idemproxy_config(pport, aport, uport, rport))
        with open(tmp / "idemproxy.stderr", "wb") as err:
            px = subprocess.Popen([BIN, "-c", str(conf)], stdout=err, stderr=subprocess.STDOUT,
                                  env=dict(os.environ, REDIS_PASSWORD=PASSWORD))
        procs.append(px)
        ready = wait_for(lambda: call(aport, "GET", "/readyz", timeout=2)[0] == 200, 20, px)
        if not ready:
            raise AssertionError("idemproxy with the ConfigMap's config never became ready: %s"
                                 % (tmp / "idemproxy.stderr").read_text()[-3000:])
        yield pport, aport, uport, rport
        stop(px)
        assert px.returncode == 0, "idemproxy exited %r on SIGTERM" % px.returncode
    finally:
        for p in reversed(procs):
            stop(p)


def test_redis_runs_as_configured(live):
    _, _, _, rport = live
    get = lambda k: redis_cmd(rport, "CONFIG", "GET", k, password=PASSWORD)[1]
    rc = redis_conf()
    assert get("maxmemory-policy") == "noeviction"
    assert get("appendonly") == "yes"
    assert get("appendfsync") == rc["appendfsync"]
    with pytest.raises(RuntimeError, match="NOAUTH|AUTH"):
        redis_cmd(rport, "PING")            # requirepass is on


def test_the_readme_check_works(live):
    """conf/kubernetes/README.md's check: the same POST twice, the second
    is a replay and the API ran it once."""
    pport, aport, uport, _ = live
    body = json.dumps({"sku": "book", "qty": 1}).encode()
    hdrs = {"Idempotency-Key": "deploy-test-1", "Content-Type": "application/json"}
    s1, h1, b1 = call(pport, "POST", "/v1/orders", body, hdrs)
    s2, h2, b2 = call(pport, "POST", "/v1/orders", body, hdrs)
    assert (s1, h1.get("idempotent-replayed")) == (201, "false"), (s1, h1, b1)
    assert (s2, h2.get("idempotent-replayed")) == (201, "true"), (s2, h2, b2)
    assert b1 == b2
    log = json.loads(call(uport, "GET", "/__log")[2])
    assert len([e for e in log if e["key"] == "deploy-test-1"]) == 1
    # the payments route is scoped by tenant and answers problem+json
    s, h, b = call(pport, "POST", "/v1/payments", b"{}",
                   {"Idempotency-Key": "p-1", "Content-Type": "application/json"})
    assert s == 400 and h["content-type"].startswith("application/problem+json"), (s, h, b)
    assert b"SCOPE_REQUIRED" in b


# ------------------------------------------------------------ metrics

@pytest.fixture(scope="module")
def exposed(live):
    """{metric name: set of label names} as /metrics renders them, with a
    histogram's _bucket, _sum and _count; and the outcome label's values."""
    _, aport, _, _ = live
    status, _, text = call(aport, "GET", "/metrics")
    assert status == 200
    text = text.decode()
    names, outcomes = {}, set()
    for line in text.splitlines():
        m = re.match(r"# TYPE (\S+) (\S+)", line)
        if m:
            names.setdefault(m.group(1), set())
            if m.group(2) == "histogram":
                for suf in ("_bucket", "_sum", "_count"):
                    names.setdefault(m.group(1) + suf, set())
            continue
        m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})? ", line)
        if m:
            labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
            names.setdefault(m.group(1), set()).update(labels)
            if "outcome" in labels:
                outcomes.add(labels["outcome"])
    return names, outcomes


def load_dashboard():
    with open(DASHBOARD) as f:
        return json.load(f)


def dashboard_exprs():
    d = load_dashboard()
    out = []
    def walk(panels):
        for p in panels:
            out.extend(t["expr"] for t in p.get("targets", []) if t.get("expr"))
            walk(p.get("panels", []))
    walk(d["panels"])
    for v in d.get("templating", {}).get("list", []):
        if v.get("type") != "query":
            continue
        q = v.get("query")
        out += [e for e in (q.get("query") if isinstance(q, dict) else q, v.get("definition")) if e]
    return out


def alert_rules():
    rules = []
    for g in load_docs(ALERTS)[0]["groups"]:
        rules += g["rules"]
    return rules


def all_exprs():
    return dashboard_exprs() + [r["expr"] for r in alert_rules()]


def test_dashboard_structure():
    d = load_dashboard()
    assert d.get("title") and d.get("uid")
    assert isinstance(d.get("schemaVersion"), int)
    ids = []
    def walk(panels):
        for p in panels:
            ids.append(p["id"])
            assert {"h", "w", "x", "y"} <= set(p["gridPos"]), p["title"]
            if p["type"] != "row":
                assert p.get("targets"), "panel %r has no query" % p["title"]
                for t in p["targets"]:
                    assert t.get("expr") and t.get("refId"), p["title"]
            walk(p.get("panels", []))
    walk(d["panels"])
    assert len(ids) == len(set(ids)), "duplicate panel ids"
    titles = " ".join(p["title"].lower() for p in d["panels"])
    for want in ("outcome", "replay", "mismatch", "store error", "upstream latency",
                 "redis latency", "in flight", "reconnect"):
        assert want in titles, "no panel about %r" % want
    text = json.dumps(d)
    for q in ("histogram_quantile(0.5", "histogram_quantile(0.99"):
        assert q in text


def test_alert_rules_structure():
    docs = load_docs(ALERTS)
    assert len(docs) == 1 and list(docs[0]) == ["groups"]
    names = set()
    for r in alert_rules():
        assert r.get("alert") and r.get("expr"), r
        assert r["alert"] not in names, "duplicate alert %s" % r["alert"]
        names.add(r["alert"])
        assert r.get("labels", {}).get("severity") in ("critical", "warning", "info"), r["alert"]
        assert r.get("annotations", {}).get("summary"), r["alert"]
    exprs = " ".join(r["expr"] for r in alert_rules())
    for want in ('outcome="store_error"', "increase(idemproxy_redis_restarts_total[10m])",
                 "idemproxy_upstream_duration_seconds_bucket", "idemproxy_oldest_request_age_seconds",
                 'outcome=~"replay|in_flight|mismatch"', "kube_pod_container_status_ready"):
        assert want in exprs, "no alert on %s" % want


def referenced(exprs):
    """[(metric, {label: [(op, value)]})] for every idemproxy_ metric."""
    out = []
    for e in exprs:
        for m in re.finditer(r"\b(idemproxy_[a-zA-Z0-9_]+)(\{([^}]*)\})?", e):
            labels = {}
            for lm in re.finditer(r'(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"', m.group(3) or ""):
                labels.setdefault(lm.group(1), []).append((lm.group(2), lm.group(3)))
            out.append((m.group(1), labels))
    return out


def test_metric_names_are_exposed(exposed):
    names, outcomes = exposed
    refs = referenced(all_exprs())
    assert refs, "no idemproxy metric referenced"
    bad = []
    for metric, labels in refs:
        if metric not in names:
            if metric in PENDING_METRICS:
                continue
            bad.append("%s: not exposed by idemproxy" % metric)
            continue
        for label in labels:
            if label not in TARGET_LABELS and label not in names[metric] and label != "le":
                bad.append("%s has no label %s" % (metric, label))
    assert not bad, "\n".join(sorted(set(bad)))


def test_label_values_exist(exposed):
    names, outcomes = exposed
    assert "first" in outcomes and "replay" in outcomes
    allowed = {"outcome": outcomes, "would": outcomes}
    bad = []
    for metric, labels in referenced(all_exprs()):
        for label, matchers in labels.items():
            values = allowed.get(label)
            if metric in PENDING_METRICS:
                values = PENDING_METRICS[metric].get(label, values)
            if values is None:
                continue
            for op, v in matchers:
                if v.startswith("$"):
                    continue
                for alt in (v.split("|") if op in ("=~", "!~") else [v]):
                    if alt not in values:
                        bad.append("%s{%s%s\"%s\"}: %r is not a value idemproxy uses"
                                   % (metric, label, op, v, alt))
    assert not bad, "\n".join(sorted(set(bad)))


def need_promtool():
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: scripts/deps.sh installs Debian's prometheus"
    return promtool


def test_promql_parses(tmp_path):
    """promtool (Debian's prometheus package, from scripts/deps.sh) checks
    the alert rules and every dashboard query."""
    promtool = need_promtool()
    r = subprocess.run([promtool, "check", "rules", ALERTS], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    rules = []
    for i, e in enumerate(dashboard_exprs()):
        e = e.replace("$__rate_interval", "5m")
        e = re.sub(r"\$\{?(\w+)\}?", ".*", e)
        if e.startswith("label_values("):
            e = re.match(r"label_values\(([^,]+),", e).group(1)
        rules.append({"record": "dashboard:query_%d" % i, "expr": e})
    f = tmp_path / "dashboard-rules.yaml"
    f.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    r = subprocess.run([promtool, "check", "rules", str(f)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


ALERT_TESTS = ALERTS.replace(".yaml", ".test.yaml")


def promtool_test_rules(directory):
    r = subprocess.run([need_promtool(), "test", "rules", os.path.basename(ALERT_TESTS)],
                       cwd=directory, capture_output=True, text=True, timeout=120)
    return r.returncode, r.stdout + r.stderr


def test_alerts_fire_as_intended():
    """conf/prometheus/idemproxy-alerts.test.yaml, as it is: promtool's unit
    tests of the alert rules on synthetic series, when each fires, with
    which labels and annotations."""
    rc, out = promtool_test_rules(os.path.dirname(ALERTS))
    assert rc == 0 and "SUCCESS" in out, out


def test_alert_tests_can_fail(tmp_path):
    """The same tests against rules whose summary was changed fail."""
    shutil.copy(ALERT_TESTS, tmp_path)
    text = open(ALERTS).read()
    broken = text.replace('summary: "idemproxy cannot use Redis ({{ $labels.job }})"',
                          'summary: "Redis trouble ({{ $labels.job }})"')
    assert broken != text
    (tmp_path / os.path.basename(ALERTS)).write_text(broken)
    rc, out = promtool_test_rules(str(tmp_path))
    assert rc != 0 and "IdemproxyStoreErrors" in out, out
