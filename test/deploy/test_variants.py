"""Checks of the Kubernetes variants under conf/kubernetes: managed-redis
(TLS, the CA from a Secret, an ACL user) and sentinel (a Sentinel group),
each a kustomize overlay of the base with the no-redis component.

Without kustomize on the machine, the overlay is resolved here the way
kustomize resolves these files: the base's objects, the component's
`$patch: delete`s, and strategic-merge patches (maps merged, lists of named
items merged by name). Then what each variant describes is run on 127.0.0.1:
its idemproxy.conf through `idemproxy -t`, and the real binary with that
config in front of a TLS redis-server with the README's ACL user, or three
sentinels, a master and a replica.

Run: IDEMPROXY_BIN=proxy/idemproxy /usr/bin/python3 -m pytest -q test/deploy
"""
import copy
import json
import os
import re
import subprocess
import sys

import pytest
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "e2e"))
import test_manifests as base  # noqa: E402  (its file helpers and process helpers)
import redisdeploy  # noqa: E402  (test/e2e/redisdeploy.py)

K8S = base.K8S
VARIANTS = ["managed-redis", "sentinel"]
PASSWORD = "varianttest0123456789abcdef"


def load(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def merge(into, patch):
    """Strategic merge as these patches use it."""
    for k, v in patch.items():
        if isinstance(v, dict) and isinstance(into.get(k), dict):
            merge(into[k], v)
        elif isinstance(v, list) and isinstance(into.get(k), list) and \
                all(isinstance(x, dict) and "name" in x for x in v + into[k]):
            for item in v:
                same = next((x for x in into[k] if x["name"] == item["name"]), None)
                if same is None:
                    into[k].append(copy.deepcopy(item))
                else:
                    merge(same, item)
        else:
            into[k] = copy.deepcopy(v)


def patch_docs(kust_dir, kust):
    for p in kust.get("patches") or []:
        if "path" in p:
            yield from load(os.path.join(kust_dir, p["path"]))
        else:
            yield from [d for d in yaml.safe_load_all(p["patch"]) if d is not None]


def resolve(name):
    """{(kind, name): object} that `kustomize build conf/kubernetes/NAME` gives."""
    d = os.path.join(K8S, name)
    kust = load(os.path.join(d, "kustomization.yaml"))[0]
    assert kust["resources"] == ["../"], "a variant is an overlay of the base"
    objs = copy.deepcopy(base.k8s_objects())
    patches = []
    for comp in kust.get("components") or []:
        cdir = os.path.normpath(os.path.join(d, comp))
        ckust = load(os.path.join(cdir, "kustomization.yaml"))[0]
        assert ckust["kind"] == "Component"
        patches += list(patch_docs(cdir, ckust))
    patches += list(patch_docs(d, kust))
    for p in patches:
        key = (p["kind"], p["metadata"]["name"])
        assert key in objs, "%s patches %s, which the base does not have" % (name, key)
        if p.get("$patch") == "delete":
            del objs[key]
        else:
            merge(objs[key], p)
    return objs


def files(name):
    d = os.path.join(K8S, name)
    return sorted(os.listdir(d))


@pytest.mark.parametrize("name", VARIANTS)
def test_variant_lists_its_files(name):
    """Every YAML file of the variant is the kustomization or one it uses."""
    d = os.path.join(K8S, name)
    kust = load(os.path.join(d, "kustomization.yaml"))[0]
    used = {p["path"] for p in kust.get("patches") or [] if "path" in p}
    present = {f for f in files(name) if f.endswith(".yaml")} - {"kustomization.yaml"}
    assert present == used, (present, used)
    assert "README.md" in files(name)


@pytest.mark.parametrize("name", VARIANTS)
def test_variant_drops_the_example_redis(name):
    objs = resolve(name)
    kinds = sorted(k for k, _ in objs)
    assert "StatefulSet" not in kinds, kinds
    assert ("ConfigMap", "redis-config") not in objs
    assert ("Deployment", "orders-api") in objs and ("Service", "orders-api") in objs


def config_text(objs):
    dep = objs[("Deployment", "orders-api")]
    vols = {v["name"]: v for v in dep["spec"]["template"]["spec"]["volumes"]}
    c = next(c for c in dep["spec"]["template"]["spec"]["containers"] if c["name"] == "idemproxy")
    m = next(m for m in c["volumeMounts"] if m["mountPath"] == "/etc/idemproxy")
    return objs[("ConfigMap", vols[m["name"]]["configMap"]["name"])]["data"]["idemproxy.conf"]


def password_ref(objs):
    dep = objs[("Deployment", "orders-api")]
    c = next(c for c in dep["spec"]["template"]["spec"]["containers"] if c["name"] == "idemproxy")
    env = {e["name"]: e for e in c["env"]}
    return env["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"]


def test_managed_redis_wiring():
    """rediss:// with an ACL user; tls_ca_file is the CA Secret's file as
    mounted; the password from the ACL user's Secret."""
    objs = resolve("managed-redis")
    cfg = base.parse_ini(config_text(objs))
    assert cfg["redis"]["url"].startswith("rediss://idem@"), cfg["redis"]
    assert cfg["redis"]["password"] == "${REDIS_PASSWORD}"
    assert password_ref(objs) == {"name": "redis-acl", "key": "REDIS_PASSWORD"}
    dep = objs[("Deployment", "orders-api")]
    spec = dep["spec"]["template"]["spec"]
    c = next(c for c in spec["containers"] if c["name"] == "idemproxy")
    ca = cfg["redis"]["tls_ca_file"]
    mount = max((m for m in c["volumeMounts"] if ca.startswith(m["mountPath"] + "/")),
                key=lambda m: len(m["mountPath"]))       # the deepest mount holds it
    vol = next(v for v in spec["volumes"] if v["name"] == mount["name"])
    assert vol["secret"]["secretName"] == "redis-ca"
    assert any(i["path"] == os.path.basename(ca) for i in vol["secret"]["items"])
    # the base's config mount is still there (merged by name, not replaced)
    assert any(m["mountPath"] == "/etc/idemproxy" for m in c["volumeMounts"])
    # the README's ACL line with this key_prefix
    readme = open(os.path.join(K8S, "managed-redis", "README.md")).read()
    assert "~%s*" % cfg["redis"]["key_prefix"] in readme


def test_sentinel_wiring():
    objs = resolve("sentinel")
    cfg = base.parse_ini(config_text(objs))
    assert "url" not in cfg["redis"]
    assert len(cfg["redis"]["sentinels"].split(",")) == 3
    assert cfg["redis"]["sentinel_master"]
    assert int(cfg["redis"]["replicas_ack"]) >= 1
    assert password_ref(objs) == {"name": "redis", "key": "redis-password"}


@pytest.fixture
def upstream_port():
    port = base.free_port()
    up = subprocess.Popen([base.PY, base.UPSTREAM_PY, str(port)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert base.wait_for(lambda: base.call(port, "GET", "/__log", timeout=1)[0] == 200, 15, up)
        yield port
    finally:
        base.stop(up)


def run_variant(tmp, text, upstream_port, repl):
    """The variant's config on loopback (listen, upstream, admin and the
    given Redis keys moved): -t, then a first request and its replay."""
    pport, aport = base.free_port(), base.free_port()
    repl = dict(repl)
    repl.update({("proxy", "listen"): "127.0.0.1:%d" % pport,
                 ("proxy", "upstream"): "http://127.0.0.1:%d" % upstream_port,
                 ("admin", "listen"): "127.0.0.1:%d" % aport})
    conf = tmp / "idemproxy.conf"
    conf.write_text(base.ini_replace(text, repl))
    env = dict(os.environ, REDIS_PASSWORD=PASSWORD)
    r = subprocess.run([base.BIN, "-t", "-c", str(conf)], env=env, capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    with open(tmp / "idemproxy.stderr", "wb") as err:
        px = subprocess.Popen([base.BIN, "-c", str(conf)], stdout=err, stderr=subprocess.STDOUT,
                              env=env)
    try:
        ready = base.wait_for(lambda: base.call(aport, "GET", "/readyz", timeout=2)[0] == 200,
                              20, px)
        assert ready, (base.call(aport, "GET", "/readyz")[2],
                       (tmp / "idemproxy.stderr").read_text()[-3000:])
        body = json.dumps({"sku": "book", "qty": 1}).encode()
        h = {"Idempotency-Key": "variant-1", "Content-Type": "application/json"}
        s1, h1, b1 = base.call(pport, "POST", "/v1/orders", body, h)
        s2, h2, b2 = base.call(pport, "POST", "/v1/orders", body, h)
        assert (s1, h1.get("idempotent-replayed")) == (201, "false"), (s1, b1)
        assert (s2, h2.get("idempotent-replayed"), b2) == (201, "true", b1), (s2, b2)
    finally:
        base.stop(px)
    assert px.returncode == 0, (tmp / "idemproxy.stderr").read_text()[-2000:]
    assert PASSWORD not in (tmp / "idemproxy.stderr").read_text()


def test_managed_redis_runs(tmp_path, upstream_port):
    """Against a TLS redis-server whose certificate a CA made here signed,
    as the ACL user the variant's README creates: ready, first, replay."""
    certs = redisdeploy.Certs(str(tmp_path / "certs"))
    srv = redisdeploy.Server(str(tmp_path / "redis"), tls=certs).start()
    try:
        text = config_text(resolve("managed-redis"))
        cfg = base.parse_ini(text)
        readme = open(os.path.join(K8S, "managed-redis", "README.md")).read()
        m = re.search(r"ACL SETUSER idem on \">\$PW\" (.*?)\n```", readme, re.S)
        words = m.group(1).replace("\\\n", " ").replace("'", "").replace("\\|", "|").split()
        # (the server speaks TLS only: redis-cli --tls sets the user up)
        r = subprocess.run([redisdeploy.REDIS_CLI, "--tls", "--cacert", certs.ca, "-p",
                            str(srv.port), "ACL", "SETUSER", "idem", "on", ">" + PASSWORD] + words,
                           capture_output=True, text=True, timeout=10)
        assert r.stdout.strip() == "OK", r.stdout + r.stderr
        url = re.sub(r"@[^/]+/", "@127.0.0.1:%d/" % srv.port, cfg["redis"]["url"])
        run_variant(tmp_path, text, upstream_port, {("redis", "url"): url,
                                                    ("redis", "tls_ca_file"): certs.ca})
    finally:
        srv.stop()


def test_sentinel_runs(tmp_path, upstream_port):
    """Against three sentinels, a master and a replica, all requiring the
    chart's one password: ready, first, replay (with replicas_ack)."""
    g = redisdeploy.SentinelGroup(str(tmp_path / "sentinel"), name="mymaster", password=PASSWORD)
    g.start()
    try:
        text = config_text(resolve("sentinel"))
        run_variant(tmp_path, text, upstream_port, {("redis", "sentinels"): g.sentinel_list()})
    finally:
        g.stop()
