#!/usr/bin/python3
"""`make bench`: idemproxy against nginx and two Node idempotency peers.

Starts on 127.0.0.1 one redis-server and one nginx upstream (POST -> 201 and
a fixed 100-byte JSON body; GET /big/<MB>.bin -> a file of that size), then
the servers under test, all in front of that upstream: nginx as a plain
reverse proxy, idemproxy (with `[redis] record_layout = 2` where the binary
has the option, and a second one with layout 1 beside it), express with
express-idempotency and without it, and @node-idempotency/core on a plain
Node HTTP server. idemproxy also runs on three other Redis deployments
(test/e2e/redisdeploy.py): a TLS redis-server, a master with one replica and
replicas_ack = 1, and a Redis Cluster of three masters.

One function per measurement, in this order: the wrk scenarios in
interleaved rounds (throughput, latency, CPU per request of the server and
of Redis), syscalls per request (strace -c), hardware counters (perf stat,
where the machine has them), the storms, streaming downloads against nginx,
memory (10,000 idle connections, a storm of 100,000 keys, 10 concurrent
1 GB streams), callgrind instructions per request with where they go, and
the same instruction counts for the binary of BENCH_BEFORE (the commit
before idemproxy's own HTTP server). Then it stops everything and prints
one table of every figure against its target, and the details; the same
as markdown goes to build/bench/report.md, raw numbers to
build/bench/results.json. Everything it writes goes to build/bench/.

Environment: BENCH_DURATION (s, wrk run at BENCH_CONNECTIONS connections,
default 4), BENCH_C1_DURATION (s, the one-connection run, default 2),
BENCH_ROUNDS (default 5), BENCH_CONNECTIONS (default 50), BENCH_STORMS
(storms per target, default 10), BENCH_STREAM_MB (one download per proxy
per round, default 512), BENCH_STREAMS and BENCH_STREAMS_MB (the concurrent
streams of the memory check, default 10 of 1024 MB), BENCH_IDLE_CONNS
(default 10000), BENCH_KEY_STORM (distinct keys, default 100000),
BENCH_CALLGRIND_N (default 1000; 0 skips callgrind), BENCH_BEFORE (the
"before" commit, default 5211bfd; empty skips), BENCH_MAX_OTHER (default
25: a run during which other processes used more than this % of the
measured server's CPU is repeated after 5 s, at most 3 times),
BENCH_RETRIES (such repeats in all, default 12), IDEMPROXY_BIN (default
proxy/idemproxy), IDEMPROXY_ENV (extra environment for idemproxy),
BENCH_SERVER_CPU and BENCH_LOAD_CPU (default 0 and 1: where the measured
server, and wrk, curl, the upstream and redis, are pinned; may be the same
CPU), BENCH_CALLGRIND_DEPLOYMENTS (1: callgrind also counts first requests
and replays on the TLS, replicas_ack and cluster deployments; default 0).
Standard library only.
"""
import atexit
import http.client
import json
import os
import re
import resource
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "test"))
from ports import free_port  # noqa: E402  (test/ports.py, shared with the tests)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "test", "e2e"))
import redisdeploy  # noqa: E402  (test/e2e/redisdeploy.py: TLS, replicas, cluster)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
OUT = os.path.join(ROOT, "build", "bench")
BIN = os.path.abspath(os.environ.get("IDEMPROXY_BIN") or os.path.join(ROOT, "proxy", "idemproxy"))
WRK_LUA = os.path.join(HERE, "wrk.lua")
NODE_DIR = os.path.join(HERE, "node")
HOST = "127.0.0.1"

KNOBS = ("BENCH_DURATION", "BENCH_C1_DURATION", "BENCH_ROUNDS", "BENCH_CONNECTIONS", "BENCH_STORMS",
         "BENCH_STREAM_MB", "BENCH_STREAMS", "BENCH_STREAMS_MB", "BENCH_IDLE_CONNS",
         "BENCH_KEY_STORM", "BENCH_CALLGRIND_N", "BENCH_BEFORE", "BENCH_MAX_OTHER", "BENCH_RETRIES",
         "IDEMPROXY_BIN", "IDEMPROXY_ENV", "BENCH_SERVER_CPU", "BENCH_LOAD_CPU",
         "BENCH_CALLGRIND_DEPLOYMENTS")
DUR = int(os.environ.get("BENCH_DURATION", "4"))
C1DUR = int(os.environ.get("BENCH_C1_DURATION", "2"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
CONNS = int(os.environ.get("BENCH_CONNECTIONS", "50"))
STORMS = int(os.environ.get("BENCH_STORMS", "10"))
STREAM_MB = int(os.environ.get("BENCH_STREAM_MB", "512"))
STREAMS = int(os.environ.get("BENCH_STREAMS", "10"))
STREAMS_MB = int(os.environ.get("BENCH_STREAMS_MB", "1024"))
IDLE_CONNS = int(os.environ.get("BENCH_IDLE_CONNS", "10000"))
KEY_STORM = int(os.environ.get("BENCH_KEY_STORM", "100000"))
CG_N = int(os.environ.get("BENCH_CALLGRIND_N", "1000"))
CG_DEP = os.environ.get("BENCH_CALLGRIND_DEPLOYMENTS", "0") == "1"
BEFORE = os.environ.get("BENCH_BEFORE", "5211bfd")
# extra environment for every idemproxy the bench starts, e.g.
# IDEMPROXY_ENV="EVENT_EPOLL_USE_CHANGELIST=1" (a what-if; printed in the output)
IDEM_ENV = dict(kv.split("=", 1) for kv in os.environ.get("IDEMPROXY_ENV", "").split() if "=" in kv)
# a run during which other processes used more than BENCH_MAX_OTHER % of
# CPU 0 (the measured server's) is run again, BENCH_RETRIES times in all
MAX_OTHER = float(os.environ.get("BENCH_MAX_OTHER", "25"))
RETRIES = [int(os.environ.get("BENCH_RETRIES", "12"))]
STORM_N = 50
REPLAY_KEYS = 100
KEY_STORM_CONNS = 100

BODY = '{"sku":"book","qty":1}'
# the upstream's answer: exactly 100 bytes of JSON
UP_BODY = '{"orderId":"ord_00000000000000001","status":"created","sku":"book","qty":1,"total":1999,"cur":"EUR"}'
assert len(UP_BODY) == 100, len(UP_BODY)

NCPU = os.cpu_count() or 1
PIN = NCPU >= 2
SERVER_CPU = os.environ.get("BENCH_SERVER_CPU", "0")
LOAD_CPU = os.environ.get("BENCH_LOAD_CPU", "1")
CLK_TCK = os.sysconf("SC_CLK_TCK")
MB = 1 << 20

# The targets (issues 13 and 15), all against nginx in the same run.
T_CPU = {"pass": 1.10, "first": 1.5, "replay": 1.0}      # idemproxy CPU/request, x nginx's
T_REDIS = {"first": 12.0, "replay": 4.0}                 # Redis CPU us per request
T_RPS = {"replay": 1.0, "first": 0.6, "pass": 0.9}       # req/s, x nginx's
T_STREAM = 0.8                                           # streaming MB/s, x nginx's
T_PEER = 10.0                                            # req/s, x each Node peer's
T_LAT = {"first": 0.10, "replay": 0.02}                  # p50 at one connection, ms over nginx's
T_IDLE_MB = 32.0                                         # RSS with 10,000 idle connections
T_KEYS_BACK_MB = 2.0                                     # RSS after the key storm, over its start
T_STREAMS_MB = 64.0                                      # RSS while 10 1 GB streams pass


STARTED = time.monotonic()


def log(*a):
    print(*a, flush=True)


def section(title):
    log("\n== %s  [%.0f s]" % (title, time.monotonic() - STARTED))


def pin(cpu):
    return ["taskset", "-c", cpu] if PIN else []


# ------------------------------------------------------------ processes

PROCS = []


def start(name, argv, cpu, env=None, cwd=None):
    logf = open(os.path.join(OUT, name + ".log"), "wb")
    p = subprocess.Popen(pin(cpu) + argv, stdout=logf, stderr=subprocess.STDOUT,
                         env=env, cwd=cwd, start_new_session=True)
    p.bench_name = name
    PROCS.append(p)
    return p


def stop(p, timeout=10):
    """SIGTERM to the process group this script created for p, then SIGKILL."""
    if p.poll() is None:
        try:
            os.killpg(p.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()
    else:
        # the leader exited; its group may still have members
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    if p in PROCS:
        PROCS.remove(p)


def stop_all():
    for p in list(reversed(PROCS)):
        stop(p)


atexit.register(stop_all)


def on_signal(sig, frame):
    sys.exit(128 + sig)


signal.signal(signal.SIGINT, on_signal)
signal.signal(signal.SIGTERM, on_signal)
signal.signal(signal.SIGHUP, on_signal)


def run_group(argv, timeout, **kw):
    """argv to its end in a process group of its own, killed whole if the
    bench stops first (make's compilers, git archive's tar)."""
    p = subprocess.Popen(argv, start_new_session=True, **kw)
    try:
        p.wait(timeout)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    return p.returncode


def wait_port(port, proc, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("%s exited (status %s); see %s.log" %
                               (proc.bench_name, proc.returncode,
                                os.path.join(OUT, proc.bench_name)))
        try:
            socket.create_connection((HOST, port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("nothing listening on %d after %.0fs" % (port, timeout))


def http_get(port, path, timeout=5.0):
    c = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def wait_ready(admin_port, proc, timeout=60.0):
    wait_port(admin_port, proc, timeout)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if http_get(admin_port, "/readyz")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError("idemproxy not ready (admin :%d /readyz)" % admin_port)


def raise_fd_limit():
    """The soft limit on open files up to the hard one (10,000 idle
    connections need as many descriptors here and in idemproxy, which
    inherits it). Returns the limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        want = 1 << 20 if hard == resource.RLIM_INFINITY else hard
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
            soft = want
        except (ValueError, OSError):
            pass
    return soft


# ------------------------------------------------------------ /proc

def proc_tree(root):
    """root and all its descendants."""
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                st = f.read()
        except OSError:
            continue
        ppid = int(st[st.rindex(")") + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(d))
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def cpu_split(pids):
    """(utime, stime) clock ticks of the given processes, all their threads."""
    u = s = 0
    for p in pids:
        try:
            with open("/proc/%d/stat" % p) as f:
                st = f.read()
        except OSError:
            continue
        fields = st[st.rindex(")") + 2:].split()
        u += int(fields[11])
        s += int(fields[12])
    return u, s


def cpu_ticks(pids):
    return sum(cpu_split(pids))


def cpu_busy(cpu):
    """busy clock ticks of one CPU since boot (/proc/stat: all but idle and iowait)"""
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu%s " % cpu):
                v = [int(x) for x in line.split()[1:]]
                return sum(v[:8]) - v[3] - v[4]
    return 0


def rss_kb(pids, field="VmRSS"):
    t = 0
    for p in pids:
        try:
            with open("/proc/%d/status" % p) as f:
                for line in f:
                    if line.startswith(field + ":"):
                        t += int(line.split()[1])
        except OSError:
            pass
    return t


# ------------------------------------------------------------ configs

def nginx_conf(dirname, body):
    d = os.path.join(OUT, dirname)
    os.makedirs(d, exist_ok=True)
    temp = "".join("    %s_temp_path %s/%s;\n" % (t, d, t)
                   for t in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    conf = """worker_processes 1;
daemon off;
pid %s/nginx.pid;
error_log %s/error.log warn;
events { worker_connections 8192; }
http {
%s    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
%s}
""" % (d, d, temp, body)
    path = os.path.join(d, "nginx.conf")
    with open(path, "w") as f:
        f.write(conf)
    return d, path


def start_nginx(name, body, cpu):
    d, path = nginx_conf(name, body)
    return start(name, ["nginx", "-p", d, "-e", os.path.join(d, "error.log"), "-c", path], cpu)


def known_options(binary):
    """The (section, name) of every option the binary's `-T options` lists."""
    r = subprocess.run([binary, "-T", "options"], capture_output=True, text=True, timeout=10)
    if r.returncode != 0:
        return set()
    return {(o["section"], o["name"]) for o in json.loads(r.stdout)}


def idemproxy_conf(name, port, admin, rig, binary, redis=None, timeout="1s", layout=None):
    """redis: the [redis] lines of another deployment than the rig's own;
    layout: record_layout (only for a binary that has the option)."""
    known = rig.options(binary)
    text = """; written by scripts/bench/bench.py
[proxy]
listen = 127.0.0.1:%d
upstream = http://127.0.0.1:%d
upstream_timeout = 30s
client_timeout = 300s
upstream_connections = 256
%s
[redis]
%s%stimeout = %s

[admin]
listen = 127.0.0.1:%d

[log]
level = warn                  ; no per-request line (nginx runs with access_log off)

[route orders]
path = /v1/orders
methods = POST
ttl = 24h
lease = 60s
fingerprint_body = json
""" % (port, rig.up_port, "workers = 1\n" if ("proxy", "workers") in known else "",
       redis or "url = redis://127.0.0.1:%d/0\n" % rig.redis_port,
       "record_layout = %d\n" % layout if layout is not None else "", timeout, admin)
    path = os.path.join(OUT, name + ".conf")
    with open(path, "w") as f:
        f.write(text)
    return path


class Rig:
    """What every measurement shares: one redis-server and the nginx upstream
    on the load CPU (POST: 201 and UP_BODY; GET /big/<MB>.bin: a sparse file
    of that size, read from the page cache), and which options each
    idemproxy binary knows. layout is the record layout the main idemproxy
    rows use (2 where the binary has `[redis] record_layout`, else None: the
    binary's only one) and other_layout the one reported beside it."""

    def __init__(self):
        self.redis_port, self.up_port = free_port(), free_port()
        self.storm_log = os.path.join(OUT, "nginx-upstream", "storm.log")
        self.big_dir = os.path.join(OUT, "big")
        self._options = {}
        has = ("redis", "record_layout") in self.options(BIN)
        self.layout, self.other_layout = (2, 1) if has else (None, None)
        self.redis_p = self.up_p = None

    def options(self, binary):
        if binary not in self._options:
            self._options[binary] = known_options(binary)
        return self._options[binary]

    def start(self):
        if os.path.exists(self.storm_log):
            os.unlink(self.storm_log)
        os.makedirs(self.big_dir, exist_ok=True)
        self.redis_p = start("redis", ["redis-server", "--port", str(self.redis_port), "--bind", HOST,
                                       "--save", "", "--appendonly", "no",
                                       "--maxmemory-policy", "noeviction",
                                       "--dir", OUT, "--daemonize", "no"], LOAD_CPU)
        self.up_p = start_nginx("nginx-upstream", """    default_type application/json;
    map $arg_storm $storm_req { "" 0; default 1; }
    log_format storm '$arg_storm $request_method $uri $http_idempotency_key';
    server {
        listen 127.0.0.1:%d default_server backlog=4096;
        access_log %s storm if=$storm_req;   # storm requests only (?storm=ID)
        location = /nginx_status { stub_status; }
        location /big/ { root %s; default_type application/octet-stream; }
        location / { return 201 '%s'; }
    }
""" % (self.up_port, self.storm_log, OUT, UP_BODY), LOAD_CPU)
        wait_port(self.redis_port, self.redis_p)
        wait_port(self.up_port, self.up_p)

    def flush(self):
        redisdeploy.cmd(self.redis_port, "FLUSHALL", timeout=30)

    def big(self, mb):
        """The path of the upstream's file of mb MB (made sparse, at once)."""
        name = "%d.bin" % mb
        f = os.path.join(self.big_dir, name)
        if not os.path.exists(f) or os.path.getsize(f) != mb * MB:
            with open(f, "wb") as fh:
                fh.truncate(mb * MB)
        return "/big/" + name


class Idem:
    """One idemproxy the bench started on the rig's upstream and Redis, on
    the server CPU; valgrind: the tool's arguments to run it under."""

    def __init__(self, rig, name, binary=BIN, layout=None, redis=None, timeout="1s", valgrind=()):
        self.name = name
        self.port, self.admin = free_port(), free_port()
        self.conf = idemproxy_conf(name, self.port, self.admin, rig, binary, redis, timeout, layout)
        chk = subprocess.run([binary, "-t", "-c", self.conf], capture_output=True, text=True)
        if chk.returncode != 0:
            raise RuntimeError("bench config %s refused: %s" % (self.conf, chk.stdout + chk.stderr))
        self.proc = start(name, list(valgrind) + [binary, "-c", self.conf], SERVER_CPU,
                          env=dict(os.environ, **IDEM_ENV))

    def ready(self, timeout=60.0):
        wait_ready(self.admin, self.proc, timeout)
        return self

    def pids(self):
        return proc_tree(self.proc.pid)

    def stop(self, timeout=10):
        stop(self.proc, timeout)


# ------------------------------------------------------------ clients

def post(conn, path, key=None, body=BODY):
    h = {"Content-Type": "application/json"}
    if key is not None:
        h["Idempotency-Key"] = key
    conn.request("POST", path, body=body, headers=h)
    r = conn.getresponse()
    data = r.read()
    return r.status, r.getheader("Idempotent-Replayed"), data


def warm_keys(port, run, n=REPLAY_KEYS):
    """Stores keys run-0 .. run-(n-1) through the server on port; the
    answer to run-0 asked again (a replay)."""
    c = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        for i in range(n):
            st, _, data = post(c, "/v1/orders", "%s-%d" % (run, i))
            if st != 201:
                raise RuntimeError("warming %s-%d on :%d: %d %r" % (run, i, port, st, data[:200]))
        return post(c, "/v1/orders", "%s-0" % run)
    finally:
        c.close()


def warm_replays(port, run):
    st, rep, data = warm_keys(port, run)
    if st != 201 or rep != "true":
        raise RuntimeError("replay warm-up on :%d: %d replayed=%s %r" % (port, st, rep, data[:200]))


def run_wrk(port, mode, path, conns, dur, run, nkeys=REPLAY_KEYS, until=None):
    """wrk's figures (wrk.lua's done()) for one run; until: polled every
    50 ms, and once true wrk is stopped early (SIGINT: it still reports)."""
    env = dict(os.environ, BENCH_MODE=mode, BENCH_PATH=path, BENCH_BODY=BODY,
               BENCH_RUN=run, BENCH_KEYS=str(nkeys))
    argv = pin(LOAD_CPU) + ["wrk", "-t1", "-c%d" % conns, "-d%ds" % dur, "--latency",
                            "--timeout", "5s", "-s", WRK_LUA,
                            "http://%s:%d%s" % (HOST, port, path)]
    p = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        while until is not None and p.poll() is None and not until():
            time.sleep(0.05)
        if p.poll() is None and until is not None:
            p.send_signal(signal.SIGINT)   # (taskset execs wrk: p is wrk)
        stdout, stderr = p.communicate(timeout=dur + 60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    for line in stdout.splitlines():
        if line.startswith("BENCHJSON "):
            w = json.loads(line[len("BENCHJSON "):])
            w["errors"] = w["err_connect"] + w["err_read"] + w["err_write"] + w["err_status"] + \
                w["err_timeout"]
            return w
    raise RuntimeError("wrk gave no result: %s %s" % (stdout, stderr))


def curl_get(name, port, path):
    """A GET of path through port by curl on the load CPU, started; its
    result by curl_result."""
    return start(name, ["curl", "-s", "-o", "/dev/null", "-w",
                        "%{http_code} %{size_download} %{time_total}\n",
                        "http://%s:%d%s" % (HOST, port, path)], LOAD_CPU)


def curl_result(p, timeout=600):
    """(status, bytes, seconds) of a curl_get, once it ended."""
    try:
        p.wait(timeout)
    finally:
        stop(p)
    with open(os.path.join(OUT, p.bench_name + ".log")) as f:
        code, size, secs = f.read().split()[:3]
    return int(code), int(size), float(secs)


def metrics(admin_port):
    st, body = http_get(admin_port, "/metrics")
    out = {}
    for line in body.decode().splitlines():
        m = re.match(r'idemproxy_requests_total\{route="([^"]*)",outcome="([^"]*)"\} (\d+)', line)
        if m:
            out[m.group(2)] = out.get(m.group(2), 0) + int(m.group(3))
    return out


def upstream_requests(port):
    """nginx stub_status total requests (the query itself counts one)."""
    st, body = http_get(port, "/nginx_status")
    return int(body.decode().splitlines()[2].split()[2])


# ------------------------------------------------------------ the servers under test

def start_deployments(rig):
    """The TLS, replicated and cluster Redis, on the load CPU, each with an
    idemproxy of the main layout in front. {k: dict}"""
    certs = redisdeploy.Certs(os.path.join(OUT, "certs"))
    out = {}

    def server(name, **kw):
        srv = redisdeploy.Server(os.path.join(OUT, name), **kw)
        p = start(name, srv.args(), LOAD_CPU)
        wait_port(srv.port, p)
        return srv, p
    # each deployment: k, row and label (its scenarios), pids (its Redis
    # processes, whose CPU is counted), redis (the idemproxy config's
    # lines), flush (or None), procs and cluster (what stop_deployments stops)

    tls, tls_p = server("redis-tls", tls=certs)
    out["t"] = dict(k="t", row="8", label="TLS redis", pids=[tls_p.pid], procs=[tls_p],
                    redis="url = rediss://127.0.0.1:%d/0\ntls_ca_file = %s\n" % (tls.port, certs.ca),
                    flush=None)
    m, m_p = server("redis-master")
    r, r_p = server("redis-replica", extra=["--replicaof", HOST, str(m.port)])
    redisdeploy.replicas_online(m.port, 1, 30)
    out["a"] = dict(k="a", row="9", label="replicas_ack = 1", pids=[m_p.pid, r_p.pid], procs=[r_p, m_p],
                    redis="url = redis://127.0.0.1:%d/0\nreplicas_ack = 1\n"
                          "replicas_ack_timeout = 100ms\n" % m.port,
                    flush=lambda: redisdeploy.cmd(m.port, "FLUSHALL"))
    c = redisdeploy.Cluster(os.path.join(OUT, "cluster"), masters=3, replicas=0)
    atexit.register(c.stop)
    c.start()
    pids = [n.proc.pid for n in c.nodes]
    if PIN:
        for pid in pids:
            subprocess.run(["taskset", "-pc", LOAD_CPU, str(pid)], capture_output=True)

    def flush_cluster():
        for _, port in c.masters():
            redisdeploy.cmd(port, "FLUSHALL")
    out["c"] = dict(k="c", row="10", label="cluster of 3", pids=pids, procs=[], cluster=c,
                    redis="cluster_nodes = %s\n" % c.seeds(3), flush=flush_cluster)
    for d in out.values():
        d["idem"] = Idem(rig, "idemproxy-" + d["k"], layout=rig.layout, redis=d["redis"])
    return out


def stop_deployments(dep):
    """Their Redis processes (their idemproxies are scenarios' servers)."""
    for d in dep.values():
        for p in d["procs"]:
            stop(p)
        if "cluster" in d:
            d["cluster"].stop()


def start_node(rig, name, script, **env):
    port = free_port()
    p = start(name, ["node", script], SERVER_CPU, cwd=NODE_DIR,
              env=dict(os.environ, NODE_ENV="production", UPSTREAM_PORT=str(rig.up_port),
                       REDIS_URL="redis://127.0.0.1:%d/0" % rig.redis_port, PORT=str(port), **env))
    return p, port


def scenarios(rig, dep):
    """Starts the servers under test; the scenario list, in the order each
    round runs them. A scenario: k, label, port, mode (wrk.lua), path, proc
    (its CPU is measured), and where it applies prep (before each run), run
    (replay keys' prefix), admin (idemproxy's), redis_pids (another Redis)."""
    ngx_port = free_port()
    ngx_p = start_nginx("nginx-proxy", """    upstream app {
        server 127.0.0.1:%d;
        keepalive 64;
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:%d default_server backlog=4096;
        location / {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
        # the streams, without nginx's buffering (no temporary file)
        location /unbuffered/ {
            proxy_pass http://app/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }
    }
""" % (rig.up_port, ngx_port), SERVER_CPU)
    idem = Idem(rig, "idemproxy", layout=rig.layout)
    idem1 = Idem(rig, "idemproxy-layout1", layout=rig.other_layout) if rig.other_layout else None
    nidem_p, nidem_port = start_node(rig, "node-express-idem", "server.js", MODE="idem")
    nbare_p, nbare_port = start_node(rig, "node-express-bare", "server.js", MODE="bare")
    nni_p, nni_port = start_node(rig, "node-idempotency", "server-node-idempotency.js")
    wait_port(ngx_port, ngx_p)
    for i in [idem, idem1] + [d["idem"] for d in dep.values()]:
        if i is not None:
            i.ready()
    for p, port in ((nidem_p, nidem_port), (nbare_p, nbare_port), (nni_p, nni_port)):
        wait_port(port, p)

    def warm_express():
        warm_keys(nidem_port, "express-replay")
        rec = redisdeploy.cmd(rig.redis_port, "GET", "express-replay-0")
        if rec is None or b'"response"' not in rec:
            raise RuntimeError("express-idempotency did not store express-replay-0: %r" % rec)

    def idem_rows(i, n, row, layout_label):
        return [dict(k="first" + n, label="4%s idemproxy first requests%s" % (row, layout_label),
                     port=i.port, mode="first", path="/v1/orders", proc=i.proc, admin=i.admin,
                     prep=rig.flush),
                dict(k="replay" + n, label="5%s idemproxy replays%s" % (row, layout_label),
                     port=i.port, mode="replay", path="/v1/orders", proc=i.proc, admin=i.admin,
                     run="bench-replay" + n,
                     prep=lambda: warm_replays(i.port, "bench-replay" + n))]

    S = [
        dict(k="upstream", label="1 upstream alone (nginx return 201)", port=rig.up_port, mode="plain",
             path="/v1/orders", proc=rig.up_p),
        dict(k="nginx", label="2 nginx reverse proxy", port=ngx_port, mode="plain",
             path="/v1/orders", proc=ngx_p),
        dict(k="pass", label="3 idemproxy pass-through route", port=idem.port, mode="plain",
             path="/v1/passthrough", proc=idem.proc, admin=idem.admin),
    ]
    S += idem_rows(idem, "", "", ", record_layout = %d" % rig.layout if rig.layout else "")
    if idem1 is not None:
        S += idem_rows(idem1, "1", "b", ", record_layout = %d" % rig.other_layout)
    S += [
        dict(k="nfirst", label="6a express-idempotency first", port=nidem_port, mode="first",
             path="/v1/orders", proc=nidem_p, prep=rig.flush, count_keys=True),
        dict(k="nreplay", label="6b express-idempotency replays", port=nidem_port, mode="replay",
             path="/v1/orders", proc=nidem_p, prep=warm_express, run="express-replay"),
        dict(k="nbare", label="6c express, no middleware", port=nbare_port, mode="plain",
             path="/v1/orders", proc=nbare_p),
        dict(k="nifirst", label="7a @node-idempotency/core first", port=nni_port, mode="first",
             path="/v1/orders", proc=nni_p, prep=rig.flush),
        dict(k="nireplay", label="7b @node-idempotency/core replays", port=nni_port, mode="replay",
             path="/v1/orders", proc=nni_p, run="ni-replay",
             prep=lambda: warm_replays(nni_port, "ni-replay")),
    ]
    for d in dep.values():
        i = d["idem"]
        S.append(dict(k=d["k"] + "first", label="%sa idemproxy first, %s" % (d["row"], d["label"]),
                      port=i.port, mode="first", path="/v1/orders", proc=i.proc, admin=i.admin,
                      redis_pids=d["pids"], prep=d["flush"]))
        S.append(dict(k=d["k"] + "replay", label="%sb idemproxy replays, %s" % (d["row"], d["label"]),
                      port=i.port, mode="replay", path="/v1/orders", proc=i.proc, admin=i.admin,
                      redis_pids=d["pids"], run="bench-replay-" + d["k"],
                      prep=lambda i=i, d=d: warm_replays(i.port, "bench-replay-" + d["k"])))
    return S


# ------------------------------------------------------------ throughput, latency, CPU per request

def measure_run(rig, s, conns, dur, record=True, attempt=0):
    """One wrk run of scenario s, with the CPU the server, Redis and the two
    CPUs used meanwhile. A run during which other processes took more than
    MAX_OTHER % of the server's CPU is repeated (RETRIES in all)."""
    if s.get("prep"):
        s["prep"]()
    run = s.get("run") or ("r%d-%d-%s" % (os.getpid(), time.monotonic_ns(), s["k"]))
    pids = proc_tree(s["proc"].pid)
    m0 = metrics(s["admin"]) if s.get("admin") else None
    u0 = upstream_requests(rig.up_port)
    rpids = s.get("redis_pids") or [rig.redis_p.pid]
    (cu0, cs0), b0, t0 = cpu_split(pids), cpu_busy(SERVER_CPU), time.monotonic()
    l0, r0 = cpu_busy(LOAD_CPU), cpu_ticks(rpids)
    w = run_wrk(s["port"], s["mode"], s["path"], conns, dur, run)
    (cu1, cs1), b1, t1 = cpu_split(pids), cpu_busy(SERVER_CPU), time.monotonic()
    l1, r1 = cpu_busy(LOAD_CPU), cpu_ticks(rpids)
    n = max(1, w["requests"])
    c = (cu1 - cu0) + (cs1 - cs0)
    # is the measured server saturated, or the other core (wrk, upstream, redis)?
    w["server_cpu_pct"] = 100.0 * c / CLK_TCK / (t1 - t0)
    w["load_cpu_pct"] = 100.0 * (l1 - l0) / CLK_TCK / (t1 - t0)
    w["cpu_us_per_req"] = c * 1e6 / CLK_TCK / n
    w["sys_us_per_req"] = (cs1 - cs0) * 1e6 / CLK_TCK / n
    w["redis_us_per_req"] = (r1 - r0) * 1e6 / CLK_TCK / n
    # CPU 0 time not spent by the measured server: other tenants of the machine
    # (row 1's server is on CPU 1: not checked)
    other = (b1 - b0) - c
    w["cpu0_other_pct"] = max(0.0, 100.0 * other / CLK_TCK / (t1 - t0)) \
        if PIN and s["k"] != "upstream" and SERVER_CPU != LOAD_CPU else None
    time.sleep(0.05)
    w["rps"] = w["requests"] / (w["duration_us"] / 1e6)
    w["upstream_calls"] = upstream_requests(rig.up_port) - u0 - 1
    if m0 is not None:
        m1 = metrics(s["admin"])
        w["idem_outcomes"] = {k: m1.get(k, 0) - m0.get(k, 0) for k in m1 if m1.get(k, 0) != m0.get(k, 0)}
    if s.get("count_keys"):
        w["redis_keys"] = redisdeploy.cmd(rig.redis_port, "DBSIZE")
    if record and w["cpu0_other_pct"] is not None and w["cpu0_other_pct"] > MAX_OTHER \
            and RETRIES[0] > 0 and attempt < 3:
        RETRIES[0] -= 1
        log("  (%s, %d conn: other processes used %.0f%% of CPU %s; again in 5 s, %d retries left)"
            % (s["label"], conns, w["cpu0_other_pct"], SERVER_CPU, RETRIES[0]))
        time.sleep(5)
        return measure_run(rig, s, conns, dur, record, attempt + 1)
    return w


def measure_rounds(rig, S):
    """ROUNDS rounds, each every scenario in turn at CONNS connections, then
    at one. {k: {"c50": [one per round], "c1": [...]}}"""
    res = {s["k"]: {"c50": [], "c1": []} for s in S}
    section("warm-up: 1 s per scenario at %d connections (not recorded)" % CONNS)
    for s in S:
        measure_run(rig, s, CONNS, 1, record=False)
    for r in range(ROUNDS):
        section("round %d/%d" % (r + 1, ROUNDS))
        for s in S:
            w = measure_run(rig, s, CONNS, DUR)
            w1 = measure_run(rig, s, 1, C1DUR)
            res[s["k"]]["c50"].append(w)
            res[s["k"]]["c1"].append(w1)
            log("  %-44s %7.0f req/s  p50 %s ms  p99 %s ms  p50@1 %s ms  %6.1f us CPU/req  errors %d"
                "  server CPU %.0f%%  CPU %s (load) %.0f%%  redis %.1f us/req  CPU %s used by others %.0f%%" % (
                    s["label"], w["rps"], ms(w["p50_us"]), ms(w["p99_us"]), ms(w1["p50_us"]),
                    w["cpu_us_per_req"], w["errors"] + w1["errors"], w["server_cpu_pct"],
                    LOAD_CPU, w["load_cpu_pct"], w["redis_us_per_req"],
                    SERVER_CPU, w["cpu0_other_pct"] or 0))
    return res


def aggregate(res):
    """Medians over rounds per scenario."""
    A = {}
    for k, r in res.items():
        c50, c1 = r["c50"], r["c1"]
        A[k] = dict(rps=med([w["rps"] for w in c50]),
                    rps_rounds=[w["rps"] for w in c50],
                    p50=med([w["p50_us"] for w in c50]), p99=med([w["p99_us"] for w in c50]),
                    p50c1=med([w["p50_us"] for w in c1]),
                    cpu=med([w["cpu_us_per_req"] for w in c50]),
                    sys=med([w["sys_us_per_req"] for w in c50]),
                    errors=sum(w["errors"] for w in c50 + c1),
                    other=med([w["cpu0_other_pct"] for w in c50]),
                    srv=med([w["server_cpu_pct"] for w in c50]),
                    load=med([w["load_cpu_pct"] for w in c50]),
                    redis=med([w["redis_us_per_req"] for w in c50]),
                    upstream_calls=sum(w["upstream_calls"] for w in c50 + c1),
                    requests=sum(w["requests"] for w in c50 + c1),
                    last=c50[-1] if c50 else {})
    return A


def per_round(res, k, ref, field, conns="c50", op=lambda a, b: a / b):
    """Median over rounds of op(k's field, ref's field in the same round)."""
    return med([op(a[field], b[field]) for a, b in zip(res[k][conns], res[ref][conns]) if b[field]])


# ------------------------------------------------------------ syscalls and hardware counters

def traced(tool_argv, s, dur=2):
    """One wrk run of scenario s (CONNS connections, dur s) with tool_argv
    (a tracer attached to the server's processes) running around it; the
    tracer is stopped with SIGINT, as at a terminal. wrk's result."""
    if s.get("prep"):
        s["prep"]()
    tool = subprocess.Popen(pin(LOAD_CPU) + tool_argv, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    time.sleep(1.0)
    try:
        w = run_wrk(s["port"], s["mode"], s["path"], CONNS, dur,
                    s.get("run") or "traced-%s-%d" % (s["k"], time.monotonic_ns()))
        time.sleep(0.3)
    finally:
        os.killpg(tool.pid, signal.SIGINT)
        tool.wait(30)
    return w


def server_pids(s):
    """The measured processes: nginx's worker (not its master), or the whole tree."""
    pids = proc_tree(s["proc"].pid)
    return [p for p in pids if p != s["proc"].pid] if len(pids) > 1 and s["k"] == "nginx" else pids


def strace_counts(s):
    """Syscalls per request of scenario s's server over one wrk run (strace
    -c slows the server; the counts per request stay). ({name: per request}, requests)"""
    outf = os.path.join(OUT, "strace-%s.txt" % s["k"])
    argv = ["strace", "-c", "-f", "-o", outf]
    for p in server_pids(s):
        argv += ["-p", str(p)]
    w = traced(argv, s)
    calls = {}
    with open(outf) as f:
        for line in f:
            fields = line.split()
            if len(fields) >= 5 and fields[0][0].isdigit() and fields[-1] != "total":
                calls[fields[-1]] = int(fields[3])
    n = max(1, w["requests"])
    return {k: v / n for k, v in calls.items()}, w["requests"]


def measure_syscalls(S, keys=("nginx", "pass", "first", "replay")):
    section("syscalls per request (strace -c -f on the measured server during a 2 s wrk run at "
        "%d connections; tracing slows it, the counts per request are what matters)" % CONNS)
    out = {}
    for s in S:
        if s["k"] not in keys:
            continue
        per, n = strace_counts(s)
        out[s["k"]] = per
        top = sorted(per.items(), key=lambda kv: -kv[1])
        log("  %-44s %5.1f syscalls/request (%d requests): %s" % (
            s["label"], sum(per.values()), n, ", ".join("%s %.2f" % kv for kv in top if kv[1] >= 0.05)))
    return out


def perf_support():
    """(True, "") where `perf stat` counts instructions here, else (False, why)."""
    try:
        r = subprocess.run(["perf", "stat", "-e", "instructions", "true"], capture_output=True,
                           text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, "perf stat did not run (%s)" % e
    if r.returncode != 0 or "<not supported>" in r.stderr or "<not counted>" in r.stderr:
        what = "<not supported>" if "<not supported>" in r.stderr else first_line(r.stderr)
        return False, "`perf stat -e instructions true` says %s: no hardware counters here" % what
    return True, ""


def perf_counts(s, events=("cycles", "instructions")):
    """perf stat's events per request of scenario s's server over one wrk run."""
    outf = os.path.join(OUT, "perf-%s.csv" % s["k"])
    w = traced(["perf", "stat", "-x,", "-o", outf, "-e", ",".join(events),
                "-p", ",".join(map(str, server_pids(s)))], s)
    out = {}
    with open(outf) as f:
        for line in f:
            fields = line.strip().split(",")
            event = fields[2].split(":")[0] if len(fields) >= 3 else ""
            if event in events and fields[0].replace(".", "").isdigit():
                out[event] = float(fields[0]) / max(1, w["requests"])
    return out


def measure_perf(S, keys=("nginx", "pass", "first", "replay")):
    ok, why = perf_support()
    section("perf stat (cycles and instructions per request)")
    if not ok:
        log("  not measured: " + why)
        return dict(supported=False, why=why)
    out = dict(supported=True)
    for s in S:
        if s["k"] in keys:
            out[s["k"]] = perf_counts(s)
            log("  %-44s %s" % (s["label"], ", ".join("%s %.0f" % kv for kv in out[s["k"]].items())))
    return out


# ------------------------------------------------------------ storms

def storm_once(port, path, key, n=STORM_N):
    req = ("POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
           "Idempotency-Key: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
           % (path, key, len(BODY), BODY)).encode()
    socks = [socket.create_connection((HOST, port), timeout=10) for _ in range(n)]
    barrier = threading.Barrier(n)
    results = [None] * n

    def one(i):
        s = socks[i]
        try:
            barrier.wait()
            s.sendall(req)
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
            head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1")
            status = int(head.split(" ", 2)[1])
            replayed = re.search(r"(?im)^Idempotent-Replayed:\s*true", head) is not None
            results[i] = "%d%s" % (status, " replay" if replayed else "")
        except Exception as e:  # noqa: BLE001 - reported as an outcome
            results[i] = "error %s" % type(e).__name__
        finally:
            s.close()

    ts = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return results


def count_storm_lines(logfile, sid):
    try:
        with open(logfile) as f:
            return sum(1 for line in f if line.split(" ", 1)[0] == sid)
    except FileNotFoundError:
        return 0


def measure_storms(rig, S, peers=(("idemproxy", "first"), ("express-idempotency", "nfirst"),
                                  ("@node-idempotency/core", "nifirst"))):
    """STORMS storms against each peer: how many times the upstream ran."""
    section("storm: %d connections, one request each, the same fresh key, released together "
        "(threads + barrier); %d storms per target; executions = lines the upstream nginx "
        "logged for that storm (access_log only for ?storm=ID)" % (STORM_N, STORMS))
    port = {s["k"]: s["port"] for s in S}
    storms = {}
    for name, k in peers:
        execs, outcomes = [], {}
        for i in range(STORMS):
            sid = "s%d%s%d" % (os.getpid(), k, i)
            rr = storm_once(port[k], "/v1/orders?storm=" + sid, "storm-" + sid)
            time.sleep(0.3)
            execs.append(count_storm_lines(rig.storm_log, sid))
            for o in rr:
                outcomes[o] = outcomes.get(o, 0) + 1
        storms[name] = dict(executions=execs, outcomes=outcomes)
        log("  %-24s executions per storm: %s; answers: %s" % (
            name, " ".join(map(str, execs)), ", ".join("%s x%d" % kv for kv in sorted(outcomes.items()))))
    return storms


# ------------------------------------------------------------ streaming

def download(name, port, path, pids):
    """One download: (MB/s, server CPU us per MB)."""
    c0 = cpu_ticks(pids)
    code, size, secs = curl_result(curl_get(name, port, path))
    c1 = cpu_ticks(pids)
    if code != 200 or size != STREAM_MB * MB:
        raise RuntimeError("%s: status %d, %d bytes of %d" % (name, code, size, STREAM_MB * MB))
    return size / MB / secs, (c1 - c0) * 1e6 / CLK_TCK / (size / MB)


def measure_streaming(rig, S):
    """A STREAM_MB download from the upstream through nginx (default
    buffering, and proxy_buffering off) and through idemproxy's pass-through
    path, in turn, ROUNDS times. {k: {"mbps": [...], "cpu_us_per_mb": [...]}}"""
    path = rig.big(STREAM_MB)
    ngx = next(s for s in S if s["k"] == "nginx")
    idem = next(s for s in S if s["k"] == "pass")
    targets = (("nginx", "nginx proxy (default buffering)", ngx, path),
               ("nginx_unbuffered", "nginx proxy, proxy_buffering off", ngx, "/unbuffered" + path),
               ("idemproxy", "idemproxy pass-through", idem, path))
    section("streaming: GET of a %d MB file from the upstream nginx, curl on CPU %s, %d rounds"
        % (STREAM_MB, LOAD_CPU, ROUNDS))
    out = {k: dict(label=label, mbps=[], cpu_us_per_mb=[]) for k, label, _, _ in targets}
    download("stream-warm", ngx["port"], path, [])          # the file into the page cache
    for r in range(ROUNDS):
        for k, label, s, p in targets:
            mbps, cpu = download("stream-%s" % k, s["port"], p, server_pids(s))
            out[k]["mbps"].append(mbps)
            out[k]["cpu_us_per_mb"].append(cpu)
            log("  round %d  %-34s %7.0f MB/s  %6.0f us CPU per MB" % (r + 1, label, mbps, cpu))
    return out


# ------------------------------------------------------------ memory

def measure_idle(rig):
    """RSS of a fresh idemproxy before and with IDLE_CONNS client
    connections open, each after one request (keep-alive, then idle)."""
    section("memory: %d idle connections (a fresh idemproxy; RSS from /proc/<pid>/status)" % IDLE_CONNS)
    i = Idem(rig, "idemproxy-mem-idle", layout=rig.layout).ready()
    c = http.client.HTTPConnection(HOST, i.port, timeout=10)
    for n in range(100):
        post(c, "/v1/passthrough")
        post(c, "/v1/orders", "mem-warm-%d-%d" % (os.getpid(), n))
    c.close()
    time.sleep(0.3)
    mem = dict(start=rss_kb(i.pids()))
    want = min(IDLE_CONNS, raise_fd_limit() - 100)
    req = ("POST /v1/passthrough HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           "Content-Length: %d\r\n\r\n%s" % (len(BODY), BODY)).encode()
    idle = []
    try:
        for n in range(want):
            idle.append(socket.create_connection((HOST, i.port), timeout=10))
        time.sleep(0.5)
        mem["connected"] = rss_kb(i.pids())
        for s in idle:  # one request each, one at a time: keep-alive connections, idle after it
            s.sendall(req)
            data = b""
            while b"\r\n\r\n" not in data or not data.endswith(UP_BODY.encode()):
                chunk = s.recv(65536)
                if not chunk:
                    raise RuntimeError("idle connection closed by idemproxy")
                data += chunk
        time.sleep(0.5)
        mem["idle"] = rss_kb(i.pids())
    finally:
        for s in idle:
            s.close()
    mem["connections"] = len(idle)
    time.sleep(1.0)
    mem["after_closed"] = rss_kb(i.pids())
    i.stop()
    log("  %d connections: start %.1f MB, connected %.1f MB, idle after one request each %.1f MB, "
        "all closed %.1f MB" % (len(idle), mem["start"] / 1024, mem["connected"] / 1024,
                                 mem["idle"] / 1024, mem["after_closed"] / 1024))
    return mem


def measure_key_storm(rig):
    """A fresh idemproxy's RSS before, at its peak during and after KEY_STORM
    first requests with distinct keys (wrk, KEY_STORM_CONNS connections)."""
    section("memory: a storm of %d distinct keys, %d connections (a fresh idemproxy)"
        % (KEY_STORM, KEY_STORM_CONNS))
    rig.flush()
    i = Idem(rig, "idemproxy-mem-keys", layout=rig.layout).ready()
    warm_keys(i.port, "keys-warm-%d" % os.getpid())
    time.sleep(0.3)
    mem = dict(start=rss_kb(i.pids()))
    w = run_wrk(i.port, "first", "/v1/orders", KEY_STORM_CONNS, 600, "keys-%d" % os.getpid(),
                until=lambda: metrics(i.admin).get("first", 0) >= KEY_STORM)
    time.sleep(1.0)
    mem["after"] = rss_kb(i.pids())
    mem["peak"] = rss_kb(i.pids(), "VmHWM")
    mem["requests"] = w["requests"]
    mem["errors"] = w["errors"]
    mem["keys"] = redisdeploy.cmd(rig.redis_port, "DBSIZE")
    i.stop()
    log("  %d requests (%d not 2xx or failed), %d keys in Redis: RSS start %.1f MB, peak %.1f MB, "
        "after %.1f MB" % (mem["requests"], mem["errors"], mem["keys"], mem["start"] / 1024,
                           mem["peak"] / 1024, mem["after"] / 1024))
    return mem


def measure_streams(rig):
    """A fresh idemproxy's peak RSS while STREAMS concurrent downloads of
    STREAMS_MB pass through it; their MB/s together."""
    section("memory: %d concurrent %d MB downloads through a pass-through path (a fresh idemproxy)"
        % (STREAMS, STREAMS_MB))
    path = rig.big(STREAMS_MB)
    i = Idem(rig, "idemproxy-mem-streams", layout=rig.layout).ready()
    mem = dict(start=rss_kb(i.pids()))
    t0 = time.monotonic()
    ps = [curl_get("streams-%d" % n, i.port, path) for n in range(STREAMS)]
    got = [curl_result(p) for p in ps]
    secs = time.monotonic() - t0
    mem["peak"] = rss_kb(i.pids(), "VmHWM")
    mem["after"] = rss_kb(i.pids())
    i.stop()
    bad = [g for g in got if g[0] != 200 or g[1] != STREAMS_MB * MB]
    mem["failed"] = len(bad)
    mem["mbps"] = sum(g[1] for g in got) / MB / secs
    log("  %d streams, %d incomplete: %.0f MB/s together; RSS start %.1f MB, peak %.1f MB, after %.1f MB"
        % (STREAMS, len(bad), mem["mbps"], mem["start"] / 1024, mem["peak"] / 1024, mem["after"] / 1024))
    return mem


# ------------------------------------------------------------ callgrind

def callgrind_run(rig, tag, mode, n, binary, layout, redis, replay_run):
    """n sequential requests on one keep-alive connection to an idemproxy
    under callgrind. Its output files."""
    for f in os.listdir(OUT):
        if f.startswith("callgrind.%s." % tag):
            os.unlink(os.path.join(OUT, f))
    # (valgrind is slow: a connection's setup, a TLS handshake among it,
    # gets more than the usual bound)
    i = Idem(rig, "cg-" + tag, binary, layout, redis, "5s",
             valgrind=["valgrind", "--tool=callgrind", "--trace-children=yes",
                       "--callgrind-out-file=" + os.path.join(OUT, "callgrind.%s.%%p.out" % tag)])
    try:
        i.ready(120)
        c = http.client.HTTPConnection(HOST, i.port, timeout=30)
        for j in range(n):
            if mode == "first":
                st, rep, _ = post(c, "/v1/orders", "cg-%s-%d" % (tag, j))
                ok = st == 201 and rep == "false"
            elif mode == "replay":
                st, rep, _ = post(c, "/v1/orders", "%s-%d" % (replay_run, j % REPLAY_KEYS))
                ok = st == 201 and rep == "true"
            else:
                st, rep, _ = post(c, "/v1/passthrough")
                ok = st == 201
            if not ok:
                raise RuntimeError("callgrind %s request %d: %d %s" % (tag, j, st, rep))
        c.close()
    finally:
        i.stop(120)
    return [os.path.join(OUT, f) for f in os.listdir(OUT) if f.startswith("callgrind.%s." % tag)]


def callgrind_self(files):
    """{(object, file, function): self instructions} over callgrind output
    files (the format's name compression and call lines read directly: a
    line after `calls=` is the callee's inclusive cost, not the caller's)."""
    out = {}
    for path in files:
        names = {"ob": {}, "fl": {}, "fn": {}}
        kind_of = {"ob": "ob", "cob": "ob", "fl": "fl", "fi": "fl", "fe": "fl", "cfi": "fl",
                   "cfl": "fl", "fn": "fn", "cfn": "fn"}
        cur = {"ob": "?", "fl": "?", "fn": "?"}
        after_call = False
        with open(path) as f:
            for line in f:
                c = line[:1]
                if c.isdigit() or c in "+-*":
                    if after_call:
                        after_call = False
                    else:
                        parts = line.split()
                        if len(parts) > 1:
                            key = (cur["ob"], cur["fl"], cur["fn"])
                            out[key] = out.get(key, 0) + int(parts[1])
                    continue
                if line.startswith("calls="):
                    after_call = True
                    continue
                m = re.match(r"(c?ob|c?f[lin]|fe)=\((\d+)\)(?: (.*))?$", line.rstrip("\n"))
                if not m:
                    continue
                kind = kind_of[m.group(1)]
                if m.group(3) is not None:
                    names[kind][m.group(2)] = m.group(3)
                if m.group(1) in ("ob", "fl", "fn"):
                    cur[kind] = names[kind].get(m.group(2), "?")
    return out


LIBS = (("libevent", "libevent"), ("libc", "libc.so"), ("hiredis", "libhiredis"),
        ("xxhash", "libxxhash"), ("OpenSSL", "libssl"), ("OpenSSL", "libcrypto"))


def part_of(obj, binary):
    """Which part an object file is: idemproxy's own code, a library, or other."""
    if os.path.realpath(obj) == os.path.realpath(binary):
        return "idemproxy"
    base = os.path.basename(obj)
    for part, prefix in LIBS:
        if base.startswith(prefix):
            return part
    return "other"


def callgrind_path(rig, tag, mode, binary=BIN, layout=None, redis=None):
    """Instructions per request of one path, (Ir(2N) - Ir(N)) / N: the
    total, the top functions, the parts (our code by source file, each
    library)."""
    replay_run = "cgreplay-%s-%d" % (tag, os.getpid())
    if mode == "replay":
        w = Idem(rig, "cg-warm-" + tag, binary, layout, redis).ready()
        try:
            warm_replays(w.port, replay_run)
        finally:
            w.stop()
    a1 = callgrind_self(callgrind_run(rig, tag + "-n", mode, CG_N, binary, layout, redis, replay_run))
    a2 = callgrind_self(callgrind_run(rig, tag + "-2n", mode, 2 * CG_N, binary, layout, redis, replay_run))
    per = {k: (a2.get(k, 0) - a1.get(k, 0)) / CG_N for k in set(a1) | set(a2)}
    total = sum(per.values())
    src = os.path.dirname(os.path.dirname(os.path.realpath(binary))) + "/"
    parts, files, fns = {}, {}, {}
    for (ob, fl, fn), v in per.items():
        part = part_of(ob, binary)
        parts[part] = parts.get(part, 0) + v
        if part == "idemproxy":
            rel = fl[len(src):] if fl.startswith(src) else fl
            files[rel] = files.get(rel, 0) + v
            name = "%s (%s)" % (fn, rel)
        else:
            name = "%s (%s)" % (fn, os.path.basename(ob))
        fns[name] = fns.get(name, 0) + v
    top = lambda d, n: [kv for kv in sorted(d.items(), key=lambda kv: -kv[1])[:n] if kv[1] >= total / 200]
    out = dict(ir_per_request=total, parts=top(parts, 10), files=top(files, 12), top=top(fns, 12))
    log("  %-12s %7.0f instructions/request: %s" % (tag, total, ", ".join(
        "%s %.0f%%" % (k, 100 * v / total) for k, v in out["parts"] if total)))
    log("      our files: " + ", ".join("%s %.0f" % kv for kv in out["files"][:8]))
    for k, v in out["top"]:
        log("      %8.0f  %5.1f%%  %s" % (v, 100.0 * v / total if total else 0, k))
    return out


def measure_callgrind(rig, dep):
    """Instructions per request of idemproxy (this binary) per path: the
    main layout, the other layout's first requests and replays, and with
    CG_DEP the other Redis deployments."""
    section("callgrind: instructions per request = (Ir(2N requests) - Ir(N requests)) / N, "
        "N = %d, sequential requests on one keep-alive connection" % CG_N)
    rig.flush()
    cg = {m: callgrind_path(rig, m, m, layout=rig.layout) for m in ("pass", "first", "replay")}
    if rig.other_layout:
        for m in ("first", "replay"):
            cg[m + "1"] = callgrind_path(rig, m + "-layout1", m, layout=rig.other_layout)
    if CG_DEP:
        for d in dep.values():
            for m in ("first", "replay"):
                cg[d["k"] + m] = callgrind_path(rig, d["k"] + m, m, layout=rig.layout, redis=d["redis"])
    return cg


def build_before(commit):
    """idemproxy at commit, from `git archive` built with make in
    build/bench/before-<commit> (kept for the next run). Its path, or None
    and why not."""
    d = os.path.join(OUT, "before-" + commit)
    binary = os.path.join(d, "proxy", "idemproxy")
    if os.path.exists(binary):
        return binary, ""
    os.makedirs(d, exist_ok=True)
    logf = os.path.join(OUT, "before-build.log")
    with open(logf, "wb") as lf:
        git = subprocess.Popen(["git", "-C", ROOT, "archive", commit], stdout=subprocess.PIPE,
                               stderr=lf, start_new_session=True)
        try:
            rc = run_group(["tar", "-x", "-C", d], 120, stdin=git.stdout, stderr=lf)
            git.stdout.close()
            grc = git.wait(120)
        finally:
            if git.poll() is None:
                os.killpg(git.pid, signal.SIGKILL)
                git.wait()
        if grc != 0 or rc != 0:
            return None, "git archive %s failed (see %s): not in this clone?" % (commit, logf)
        if run_group(["make", "-C", d, "-j%d" % NCPU], 900, stdout=lf, stderr=lf) != 0 \
                or not os.path.exists(binary):
            return None, "make of %s failed (see %s)" % (commit, logf)
    return binary, ""


def measure_before(rig, commit):
    """Instructions per request, pass-through, first request and replay, of
    the binary at commit, on the same harness."""
    section("before: idemproxy at %s (git archive, make), callgrind as above" % commit)
    binary, why = build_before(commit)
    if binary is None:
        log("  not measured: " + why)
        return dict(commit=commit, why=why)
    rig.flush()
    out = dict(commit=commit, version=first_line(sh([binary, "-V"])))
    for m in ("pass", "first", "replay"):
        out[m] = callgrind_path(rig, "before-" + m, m, binary=binary)
    return out


# ------------------------------------------------------------ formatting

def ms(us):
    return "%.3f" % (us / 1000.0)


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def table(rows, head, numbers=True):
    """A markdown table, its columns aligned: the first left, the others
    right (numbers) or left."""
    cells = [[str(c) for c in r] for r in [head] + rows]
    w = [max(len(r[i]) for r in cells) for i in range(len(head))]
    left = [i == 0 or not numbers for i in range(len(head))]
    line = lambda r: "| " + " | ".join(c.ljust(w[i]) if left[i] else c.rjust(w[i])
                                       for i, c in enumerate(r)) + " |"
    sep = "|" + "|".join(("-" * (x + 2)) if left[i] else ("-" * (x + 1) + ":")
                         for i, x in enumerate(w)) + "|"
    return "\n".join([line(cells[0]), sep] + [line(r) for r in cells[1:]])


def sh(argv):
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        return r.stdout + r.stderr
    except Exception:  # noqa: BLE001
        return "?"


def first_line(s):
    s = s.strip().splitlines()
    return s[0] if s else "?"


def judge(v, want, at_most):
    """'met', or 'missed by' how much (absolute, and relative to the target)."""
    if v is None:
        return "not measured"
    if (v <= want) if at_most else (v >= want):
        return "met"
    return "missed by %s (%+.0f%%)" % (num(abs(v - want)), (v / want - 1) * 100 if want else 0)


def num(v):
    return "%.3f" % v if abs(v) < 1 else "%.2f" % v if abs(v) < 10 else "%.1f" % v if abs(v) < 100 \
        else "%.0f" % v


# ------------------------------------------------------------ the report

def machine():
    cpu_model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    osname = "?"
    if os.path.exists("/etc/os-release"):
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    osname = line.split("=", 1)[1].strip().strip('"')
    return "%d cores (nproc), %s, %.0f GB, %s, kernel %s" % (
        NCPU, cpu_model, os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9, osname,
        os.uname().release)


def versions():
    node_pkgs = []
    for pkg in ("express", "express-idempotency", "express-idempotency-redis-adapter",
                "@node-idempotency/core", "@node-idempotency/storage-adapter-redis", "@redis/client"):
        try:
            with open(os.path.join(NODE_DIR, "node_modules", pkg, "package.json")) as f:
                node_pkgs.append("%s %s" % (pkg, json.load(f)["version"]))
        except OSError:
            node_pkgs.append("%s ?" % pkg)
    commit = first_line(sh(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"]))
    dirty = sh(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"]).strip()
    return "%s (commit %s%s); nginx %s; %s; node %s; wrk %s; curl %s; %s" % (
        first_line(sh([BIN, "-V"])), commit, ", with uncommitted changes" if dirty else "",
        first_line(sh(["nginx", "-v"])).split("/")[-1],
        first_line(sh(["redis-server", "--version"])).split(" sha=")[0],
        first_line(sh(["node", "--version"])),
        first_line(sh(["wrk", "-v"])).split(" [")[0].replace("wrk ", ""),
        first_line(sh(["curl", "--version"])).split()[1],
        ", ".join(node_pkgs))


def command():
    knobs = " ".join("%s=%s" % (k, os.environ[k]) for k in KNOBS if k in os.environ)
    return (knobs + " " if knobs else "") + "make bench"


def scenario_table(S, A, res):
    rows = []
    for s in S:
        a = A[s["k"]]
        rows.append([s["label"], "%.0f" % a["rps"], "%.2f" % per_round(res, s["k"], "nginx", "rps"),
                     ms(a["p50"]), ms(a["p99"]), ms(a["p50c1"]), "%.1f" % a["cpu"], "%.1f" % a["sys"],
                     "%.0f / %.0f" % (a["srv"], a["load"]), "%.1f" % a["redis"] if a["redis"] else "",
                     "%.0f" % a["other"] if a["other"] is not None else "-", str(a["errors"]),
                     " / ".join("%.0f" % x for x in a["rps_rounds"])])
    return table(rows, ["scenario", "req/s", "x nginx", "p50 ms", "p99 ms", "p50 ms, 1 conn",
                        "CPU us/req", "of it sys", "busy % srv / load", "redis us/req",
                        "CPU0 others %", "errors", "req/s per round"])


PATHS = (("pass", "pass-through"), ("first", "first request"), ("replay", "replay"))


def layouts(rig):
    """(scenario key suffix, label) of each record layout measured, the main one first."""
    if not rig.layout:
        return [("", "")]
    return [("", " (layout %d)" % rig.layout), ("1", " (layout %d)" % rig.other_layout)]


def verdict(rig, n, v, want, at_most):
    """The main layout's rows carry the target; the other layout's are beside them."""
    return judge(v, want, at_most) if not n else "(layout %d's row has the target)" % rig.layout


def us(v):
    return "%.1f us" % v


def rows_cpu(rig, A, res):
    rows = []
    for n, lab in layouts(rig):
        for path, name in PATHS:
            if path == "pass" and n:
                continue
            r = per_round(res, path + n, "nginx", "cpu_us_per_req")
            rows.append(["idemproxy CPU per request, " + name + ("" if path == "pass" else lab),
                         us(A[path + n]["cpu"]), "nginx proxy " + us(A["nginx"]["cpu"]), "%.2fx" % r,
                         "<= %.2fx" % T_CPU[path], verdict(rig, n, r, T_CPU[path], True)])
    return rows


def rows_redis(rig, A):
    rows = []
    for n, lab in layouts(rig):
        for path, name in (("first", "first request (claim + completion)"), ("replay", "replay")):
            v = A[path + n]["redis"]
            rows.append(["Redis CPU per " + name + lab, us(v), "", us(v), "<= %.0f us" % T_REDIS[path],
                         judge(v, T_REDIS[path], True)])
    return rows


def rows_throughput(rig, A, res):
    rows = []
    for n, lab in layouts(rig):
        for path, name in (("replay", "replays"), ("first", "first requests"), ("pass", "pass-through")):
            if path == "pass" and n:
                continue
            r = per_round(res, path + n, "nginx", "rps")
            rows.append(["req/s, " + name + ("" if path == "pass" else lab), "%.0f" % A[path + n]["rps"],
                         "nginx proxy %.0f" % A["nginx"]["rps"], "%.2fx" % r, ">= %.1fx" % T_RPS[path],
                         verdict(rig, n, r, T_RPS[path], False)])
    return rows


def rows_streaming(st):
    i, n, u = st["idemproxy"], st["nginx"], st["nginx_unbuffered"]
    ratio = lambda a, b, f: med([x / y for x, y in zip(a[f], b[f]) if y])
    r = ratio(i, n, "mbps")
    return [["streaming download of %d MB, MB/s" % STREAM_MB, "%.0f" % med(i["mbps"]),
             "nginx proxy %.0f (proxy_buffering off: %.0f, idemproxy %.2fx that)" % (
                 med(n["mbps"]), med(u["mbps"]), ratio(i, u, "mbps")),
             "%.2fx" % r, ">= %.1fx" % T_STREAM, judge(r, T_STREAM, False)],
            ["CPU per MB streamed", "%.0f us" % med(i["cpu_us_per_mb"]),
             "nginx proxy %.0f us (proxy_buffering off: %.0f us)" % (
                 med(n["cpu_us_per_mb"]), med(u["cpu_us_per_mb"])),
             "%.2fx" % ratio(i, n, "cpu_us_per_mb"), "(reported)", ""]]


def rows_peers(S, A, res):
    rows = []
    have = {s["k"] for s in S}
    for peer, pname in (("n", "express-idempotency"), ("ni", "@node-idempotency/core")):
        for path, name in (("first", "first requests"), ("replay", "replays")):
            if peer + path not in have:
                continue
            r = per_round(res, path, peer + path, "rps")
            c = per_round(res, peer + path, path, "cpu_us_per_req")
            rows.append(["req/s against %s, %s" % (pname, name), "%.0f" % A[path]["rps"],
                         "%.0f (CPU %s per request)" % (A[peer + path]["rps"], us(A[peer + path]["cpu"])),
                         "%.1fx (%.1fx less CPU per request)" % (r, c), ">= %.0fx" % T_PEER,
                         judge(r, T_PEER, False)])
    return rows


def measure_redis_rtt(rig):
    """The p50 of one Redis round trip at one connection, from the server
    CPU to Redis on the load CPU (redis-benchmark PING): a first request
    makes two of them (the claim before it is forwarded, the stored answer
    before it is sent), which the nginx proxy does not. ms, or None."""
    section("one Redis round trip at one connection (redis-benchmark)")
    try:
        out = subprocess.run(pin(SERVER_CPU) + ["redis-benchmark", "-h", HOST, "-p", str(rig.redis_port),
                                                "-c", "1", "-n", "20000", "--csv", "-t", "ping"],
                             capture_output=True, text=True, timeout=120).stdout
    except (OSError, subprocess.TimeoutExpired) as e:
        log("  not measured: %s" % e)
        return None
    for line in out.splitlines():
        f = [x.strip('"') for x in line.split(",")]
        if f[0] == "PING_MBULK" and len(f) > 4:
            log("  p50 %s ms" % f[4])
            return float(f[4])
    log("  not measured: redis-benchmark printed no PING_MBULK line")
    return None


def rows_latency(rig, A, res):
    rows = []
    lab = layouts(rig)[0][1]
    rtt = getattr(rig, "redis_rtt_ms", None)
    for path, name in PATHS[1:]:
        d = per_round(res, path, "nginx", "p50_us", "c1", lambda a, b: (a - b) / 1000.0)
        rows.append(["p50 at one connection, " + name + lab, "%s ms" % ms(A[path]["p50c1"]),
                     "nginx proxy %s ms" % ms(A["nginx"]["p50c1"]), "%+.3f ms" % d,
                     "<= +%.2f ms" % T_LAT[path], judge(d, T_LAT[path], True)])
    if rtt is not None:
        rows.append(["one Redis round trip at one connection, p50 (a first request makes two "
                     "more round trips than the nginx proxy: claim, stored answer)", "%.3f ms" % rtt,
                     "redis-benchmark -c 1 PING, from the server CPU", "2 x = %.3f ms" % (2 * rtt),
                     "(reported)", ""])
    return rows


def rows_memory(mem, storms):
    mb = lambda kb: kb / 1024.0
    i, k, s = mem["idle"], mem["keys"], mem["streams"]
    grow = mb(k["after"] - k["start"])
    ex = storms["idemproxy"]["executions"]
    return [
        ["RSS with %d idle client connections" % i["connections"], "%.1f MB" % mb(i["idle"]),
         "start %.1f MB" % mb(i["start"]), "%.1f MB" % mb(i["idle"]), "<= %.0f MB" % T_IDLE_MB,
         judge(mb(i["idle"]), T_IDLE_MB, True) if i["connections"] >= IDLE_CONNS else
         "only %d connections (fd limit)" % i["connections"]],
        ["RSS around a storm of %d distinct keys" % k["requests"],
         "start %.1f, peak %.1f, after %.1f MB" % (mb(k["start"]), mb(k["peak"]), mb(k["after"])),
         "", "after - start %+.1f MB" % grow, "<= +%.0f MB" % T_KEYS_BACK_MB,
         judge(grow, T_KEYS_BACK_MB, True) if not k["errors"] else "%d errors" % k["errors"]],
        ["peak RSS, %d concurrent %d MB streams" % (STREAMS, STREAMS_MB), "%.1f MB" % mb(s["peak"]),
         "%.0f MB/s together" % s["mbps"], "%.1f MB" % mb(s["peak"]), "<= %.0f MB" % T_STREAMS_MB,
         judge(mb(s["peak"]), T_STREAMS_MB, True) if not s["failed"] else "%d streams failed" % s["failed"]],
        ["executions per storm of %d (one key)" % STORM_N, " ".join(map(str, ex)),
         "; ".join("%s %s" % (p, " ".join(map(str, v["executions"])))
                   for p, v in storms.items() if p != "idemproxy"),
         "max %d" % max(ex), "1 each", "met" if all(x == 1 for x in ex) else "MISSED"],
    ]


def rows_profile(rig, A, cg, before, perf, sysc):
    rows = []
    lab = layouts(rig)[0][1]
    for path, name in PATHS:
        if path in cg:
            c = cg[path]
            rows.append(["instructions per request, " + name + ("" if path == "pass" else lab),
                         "%.0f" % c["ir_per_request"], ", ".join(
                             "%s %.0f%%" % (p, 100 * v / c["ir_per_request"]) for p, v in c["parts"]),
                         "", "(callgrind)", ""])
        if path in before:
            # the before binary has one layout: this one's layout 1
            after = cg.get(path + "1" if rig.other_layout else path, cg[path])["ir_per_request"]
            b = before[path]["ir_per_request"]
            rows.append(["instructions per request, %s: after / before (%s)%s" % (
                name, before["commit"], layouts(rig)[-1][1] if path != "pass" else ""),
                "%.0f" % after, "before %.0f" % b, "%+.0f%%" % ((after / b - 1) * 100), "no worse",
                judge(after, b, True)])
        if path in sysc:
            a, n = A[path], A["nginx"]
            rows.append(["user / kernel CPU per request, " + name + ("" if path == "pass" else lab),
                         "%.1f / %.1f us, %.1f syscalls" % (
                             a["cpu"] - a["sys"], a["sys"], sum(sysc[path].values())),
                         "nginx proxy %.1f / %.1f us, %.1f syscalls" % (
                             n["cpu"] - n["sys"], n["sys"], sum(sysc.get("nginx", {}).values())),
                         "kernel %.0f%%" % (100 * a["sys"] / a["cpu"]), "(/proc, strace -c)", ""])
    if perf.get("supported"):
        for path, name in PATHS:
            p, n = perf.get(path, {}), perf.get("nginx", {})
            rows.append(["perf stat, " + name, "%.0f cycles, %.0f instructions per request" % (
                p.get("cycles", 0), p.get("instructions", 0)),
                "nginx proxy %.0f cycles, %.0f instructions" % (n.get("cycles", 0), n.get("instructions", 0)),
                "", "(reported)", ""])
    else:
        rows.append(["perf stat cycles and instructions", "not measured: " + perf.get("why", ""),
                     "", "", "", ""])
    return rows


def summary(rig, S, A, res, streaming, mem, storms, cg, before, perf, sysc):
    """Every figure of issues 13 and 15 against its target: rows of
    (figure, idemproxy, reference, result, target, verdict)."""
    return rows_cpu(rig, A, res) + rows_redis(rig, A) + rows_throughput(rig, A, res) + \
        rows_streaming(streaming) + rows_peers(S, A, res) + rows_latency(rig, A, res) + \
        rows_memory(mem, storms) + rows_profile(rig, A, cg, before, perf, sysc)


def report(rig, S, A, res, streaming, mem, storms, cg, before, perf, sysc):
    """The markdown report: command, machine, versions, the one table, and
    the details behind it."""
    out = ["# make bench", "",
           "- command: `%s` (%.0f s in all)" % (command(), time.monotonic() - STARTED),
           "- machine: " + machine(),
           "- versions: " + versions(),
           "- method: the measured server (nginx proxy, idemproxy, node) on CPU %s; wrk, curl, the "
           "upstream nginx and Redis on CPU %s; wrk -t1 -c%d -d%ds and -c1 -d%ds per scenario, "
           "%d rounds, scenarios interleaved; medians over rounds, ratios per round then their median. "
           "CPU: utime+stime of the processes from /proc/<pid>/stat over the run, divided by the "
           "requests wrk completed (Redis: redis-server's own)." % (
               SERVER_CPU, LOAD_CPU, CONNS, DUR, C1DUR, ROUNDS),
           "- record layout of the main idemproxy rows: %s" % (
               "`record_layout = %d` (layout %d beside it)" % (rig.layout, rig.other_layout)
               if rig.layout else "the binary's only one (it has no record_layout option)"),
           ""]
    if IDEM_ENV:
        out.append("- idemproxy environment: " + " ".join("%s=%s" % kv for kv in IDEM_ENV.items()))
    out += ["## Every figure against its target", "",
            table(summary(rig, S, A, res, streaming, mem, storms, cg, before, perf, sysc),
                  ["figure", "idemproxy", "reference", "result", "target", "verdict"], numbers=False), "",
            "## Scenarios (%d connections unless stated)" % CONNS, "", scenario_table(S, A, res), ""]
    out += ["## Syscalls per request (strace -c -f, %d connections)" % CONNS, ""]
    out += ["- %s: %.1f (%s)" % (k, sum(v.values()), ", ".join(
        "%s %.2f" % kv for kv in sorted(v.items(), key=lambda kv: -kv[1]) if kv[1] >= 0.05))
        for k, v in sysc.items()]
    out += ["", "## Streaming (%d MB per download, per round)" % STREAM_MB, ""]
    out += ["- %s: %s MB/s; %s us CPU per MB" % (v["label"], " / ".join("%.0f" % x for x in v["mbps"]),
                                                 " / ".join("%.0f" % x for x in v["cpu_us_per_mb"]))
            for v in streaming.values()]
    out += ["", "## Where idemproxy's instructions go (callgrind, N = %d)" % CG_N, ""]
    profiles = [(k, v) for k, v in cg.items()] + \
        [("before %s %s" % (before.get("commit"), m), before[m]) for m in ("pass", "first", "replay")
         if m in before]
    for name, c in profiles:
        out.append("- **%s**: %.0f instructions per request; %s" % (
            name, c["ir_per_request"], ", ".join("%s %.0f" % (k, v) for k, v in c["parts"])))
        out.append("  - our files: " + ", ".join("%s %.0f" % (k, v) for k, v in c["files"]))
        out.append("  - top functions: " + ", ".join("%s %.0f" % (k, v) for k, v in c["top"]))
    return "\n".join(out) + "\n"


def checks(S, A):
    log("\nchecks (all runs): upstream calls counted by the upstream's stub_status vs requests wrk completed")
    for s in S:
        a = A[s["k"]]
        extra = ""
        if "idem_outcomes" in a["last"]:
            extra = "; idemproxy outcomes in the last %d-conn run: %s (wrk completed %d)" % (
                CONNS, a["last"]["idem_outcomes"], a["last"]["requests"])
        if "redis_keys" in a["last"]:
            extra = "; redis keys after the last %d-conn run: %d (wrk completed %d)" % (
                CONNS, a["last"]["redis_keys"], a["last"]["requests"])
        log("  %-44s requests %8d  upstream calls %8d%s" % (s["label"], a["requests"],
                                                            a["upstream_calls"], extra))


# ------------------------------------------------------------ main

def main():
    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):
        if f.startswith("callgrind.") or f.endswith(".log"):
            os.unlink(os.path.join(OUT, f))
    raise_fd_limit()
    rig = Rig()
    log("== idemproxy benchmark: %s" % command())
    log("machine: " + machine())
    log("versions: " + versions())
    log("pinning: " + ("measured server on CPU %s; wrk, curl, the nginx upstream and redis-server on "
                       "CPU %s (taskset -c)" % (SERVER_CPU, LOAD_CPU) if PIN else "off (one core)"))
    log("record layout: " + ("record_layout = %d for the main rows, %d beside it" % (
        rig.layout, rig.other_layout) if rig.layout else "the binary has no record_layout option"))
    if IDEM_ENV:
        log("idemproxy environment: %s (IDEMPROXY_ENV)" % " ".join("%s=%s" % kv for kv in IDEM_ENV.items()))
    if BEFORE:
        log("building the before binary (%s) first, so that it competes with no measurement" % BEFORE)
        build_before(BEFORE)

    rig.start()
    dep = start_deployments(rig)
    S = scenarios(rig, dep)
    log("idemproxy config: %s (route orders: POST /v1/orders, fingerprint_body = json, ttl 24h, "
        "lease 60s > upstream_timeout 30s; /v1/passthrough matches no route; log level warn)"
        % os.path.join(OUT, "idemproxy.conf"))

    res = measure_rounds(rig, S)
    rig.redis_rtt_ms = measure_redis_rtt(rig)
    sysc = measure_syscalls(S)
    perf = measure_perf(S)
    storms = measure_storms(rig, S)
    streaming = measure_streaming(rig, S)
    for s in S:
        if s["proc"] not in (rig.redis_p, rig.up_p):
            stop(s["proc"])
    if not CG_DEP:
        stop_deployments(dep)
    mem = dict(idle=measure_idle(rig), keys=measure_key_storm(rig), streams=measure_streams(rig))
    cg = measure_callgrind(rig, dep) if CG_N > 0 else {}
    before = measure_before(rig, BEFORE) if BEFORE and CG_N > 0 else {}
    stop_deployments(dep)
    stop_all()

    A = aggregate(res)
    checks(S, A)
    text = report(rig, S, A, res, streaming, mem, storms, cg, before, perf, sysc)
    with open(os.path.join(OUT, "report.md"), "w") as f:
        f.write(text)
    log("\n" + text)
    with open(os.path.join(OUT, "results.json"), "w") as f:
        json.dump(dict(results=res, medians=A, storms=storms, memory=mem, streaming=streaming,
                       callgrind=cg, before=before, perf=perf, syscalls=sysc,
                       redis_rtt_ms=rig.redis_rtt_ms,
                       idemproxy_env=IDEM_ENV, retries_left=RETRIES[0], max_other=MAX_OTHER,
                       record_layout=[rig.layout, rig.other_layout], pinned=PIN, command=command(),
                       duration=DUR, c1_duration=C1DUR, rounds=ROUNDS, connections=CONNS),
                  f, indent=1, default=str)
    log("all processes stopped; the report in build/bench/report.md, raw results in "
        "build/bench/results.json, logs in build/bench/ (%.0f s in all)" % (time.monotonic() - STARTED))


if __name__ == "__main__":
    main()
