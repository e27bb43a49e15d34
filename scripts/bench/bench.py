#!/usr/bin/python3
"""`make bench`: idemproxy against nginx and an express-idempotency peer.

Starts on 127.0.0.1 one redis-server and one nginx upstream (POST -> 201 and
a fixed 100-byte JSON body), then the servers under test: nginx as a plain
reverse proxy, idemproxy, and two Node/express processes (with and without
express-idempotency + its Redis adapter), all in front of that upstream.
idemproxy also runs on three other Redis deployments (test/e2e/redisdeploy.py),
for what each costs: a TLS redis-server (certificates made by openssl), a
master with one replica and replicas_ack = 1, and a Redis Cluster of three
masters (redis-cli --cluster create); each has first-request and replay rows.
Runs the scenarios with wrk in interleaved rounds, then the storms, the
callgrind instruction counts and the memory checks, stops everything and
prints the tables. Everything it writes goes to build/bench/.

Environment: BENCH_DURATION (s, wrk run at BENCH_CONNECTIONS connections,
default 4), BENCH_C1_DURATION (s, the one-connection run, default 2),
BENCH_ROUNDS (default 3), BENCH_CONNECTIONS (default 50), BENCH_STORMS
(storms per target, default 10), BENCH_CALLGRIND_N (default 2000; 0 skips),
BENCH_MAX_OTHER (default 25: a run during which other processes used more
than this % of the measured server's CPU is repeated after 5 s, at most 3
times), BENCH_RETRIES (such repeats in all, default 12), IDEMPROXY_BIN
(default proxy/idemproxy), IDEMPROXY_ENV (extra environment for idemproxy),
BENCH_SERVER_CPU and BENCH_LOAD_CPU (default 0 and 1: where the measured
server, and wrk, the upstream and redis, are pinned; may be the same CPU),
BENCH_CALLGRIND_DEPLOYMENTS (1: callgrind also counts first requests and
replays on the TLS, replicas_ack and cluster deployments; default 0).
Standard library only.
"""
import atexit
import http.client
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "test"))
from ports import free_port  # noqa: E402  (test/ports.py, shared with the tests)
from resp import RedisClient  # noqa: E402  (test/resp.py)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "test", "e2e"))
import redisdeploy  # noqa: E402  (test/e2e/redisdeploy.py: TLS, replicas, cluster)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
OUT = os.path.join(ROOT, "build", "bench")
BIN = os.environ.get("IDEMPROXY_BIN") or os.path.join(ROOT, "proxy", "idemproxy")
WRK_LUA = os.path.join(HERE, "wrk.lua")
NODE_DIR = os.path.join(HERE, "node")
HOST = "127.0.0.1"

DUR = int(os.environ.get("BENCH_DURATION", "4"))
C1DUR = int(os.environ.get("BENCH_C1_DURATION", "2"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
CONNS = int(os.environ.get("BENCH_CONNECTIONS", "50"))
STORMS = int(os.environ.get("BENCH_STORMS", "10"))
CG_N = int(os.environ.get("BENCH_CALLGRIND_N", "2000"))
CG_DEP = os.environ.get("BENCH_CALLGRIND_DEPLOYMENTS", "0") == "1"
# extra environment for every idemproxy the bench starts, e.g.
# IDEMPROXY_ENV="EVENT_EPOLL_USE_CHANGELIST=1" (a what-if; printed in the output)
IDEM_ENV = dict(kv.split("=", 1) for kv in os.environ.get("IDEMPROXY_ENV", "").split() if "=" in kv)
# a run during which other processes used more than BENCH_MAX_OTHER % of
# CPU 0 (the measured server's) is run again, BENCH_RETRIES times in all
MAX_OTHER = float(os.environ.get("BENCH_MAX_OTHER", "25"))
RETRIES = [int(os.environ.get("BENCH_RETRIES", "12"))]
STORM_N = 50
REPLAY_KEYS = 100

BODY = '{"sku":"book","qty":1}'
# the upstream's answer: exactly 100 bytes of JSON
UP_BODY = '{"orderId":"ord_00000000000000001","status":"created","sku":"book","qty":1,"total":1999,"cur":"EUR"}'
assert len(UP_BODY) == 100, len(UP_BODY)

NCPU = os.cpu_count() or 1
PIN = NCPU >= 2
SERVER_CPU = os.environ.get("BENCH_SERVER_CPU", "0")
LOAD_CPU = os.environ.get("BENCH_LOAD_CPU", "1")
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(*a):
    print(*a, flush=True)


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


def cpu_ticks(pids):
    t = 0
    for p in pids:
        try:
            with open("/proc/%d/stat" % p) as f:
                st = f.read()
        except OSError:
            continue
        fields = st[st.rindex(")") + 2:].split()
        t += int(fields[11]) + int(fields[12])  # utime, stime
    return t


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


# ------------------------------------------------------------ redis

class Redis:
    """One connection, opened on first use (test/resp.py)."""
    def __init__(self, port):
        self.port = port
        self.rc = None

    def cmd(self, *args):
        if self.rc is None:
            self.rc = RedisClient(self.port, timeout=30)
        return self.rc.cmd(*args)


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


def start_nginx(name, dirname, body, cpu):
    d, path = nginx_conf(dirname, body)
    p = start(name, ["nginx", "-p", d, "-e", os.path.join(d, "error.log"), "-c", path], cpu)
    return p


def idemproxy_conf(name, port, admin, up_port, redis_port, workers, redis=None, timeout="1s"):
    """redis: the [redis] lines of another deployment than redis_port's."""
    text = """; written by scripts/bench/bench.py
[proxy]
listen = 127.0.0.1:%d
upstream = http://127.0.0.1:%d
upstream_timeout = 30s
client_timeout = 300s
upstream_connections = 256
%s
[redis]
%stimeout = %s

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
""" % (port, up_port, "workers = 1\n" if workers else "",
       redis or "url = redis://127.0.0.1:%d/0\n" % redis_port, timeout, admin)
    path = os.path.join(OUT, name + ".conf")
    with open(path, "w") as f:
        f.write(text)
    return path


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
    c = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        for i in range(n):
            st, _, data = post(c, "/v1/orders", "%s-%d" % (run, i))
            if st != 201:
                raise RuntimeError("warming %s-%d on :%d: %d %r" % (run, i, port, st, data[:200]))
        return post(c, "/v1/orders", "%s-0" % run)
    finally:
        c.close()


def run_wrk(port, mode, path, conns, dur, run, nkeys=REPLAY_KEYS):
    env = dict(os.environ, BENCH_MODE=mode, BENCH_PATH=path, BENCH_BODY=BODY,
               BENCH_RUN=run, BENCH_KEYS=str(nkeys))
    argv = pin(LOAD_CPU) + ["wrk", "-t1", "-c%d" % conns, "-d%ds" % dur, "--latency",
                            "--timeout", "5s", "-s", WRK_LUA,
                            "http://%s:%d%s" % (HOST, port, path)]
    r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=dur + 60)
    for line in r.stdout.splitlines():
        if line.startswith("BENCHJSON "):
            return json.loads(line[len("BENCHJSON "):])
    raise RuntimeError("wrk gave no result: %s %s" % (r.stdout, r.stderr))


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


# ------------------------------------------------------------ storm

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


# ------------------------------------------------------------ syscalls

def strace_counts(pids, port, mode, path, run, dur=2):
    """Syscalls per request of the given processes over one wrk run at CONNS
    connections (strace -c slows the server; the counts per request stay)."""
    outf = os.path.join(OUT, "strace-%s.txt" % run)
    argv = ["strace", "-c", "-f", "-o", outf]
    for p in pids:
        argv += ["-p", str(p)]
    st = subprocess.Popen(pin(LOAD_CPU) + argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                          start_new_session=True)
    time.sleep(1.0)
    try:
        w = run_wrk(port, mode, path, CONNS, dur, run)
        time.sleep(0.3)
    finally:
        os.killpg(st.pid, signal.SIGINT)
        st.wait(30)
    calls = {}
    with open(outf) as f:
        for line in f:
            fields = line.split()
            if len(fields) >= 5 and fields[0][0].isdigit() and fields[-1] != "total":
                calls[fields[-1]] = int(fields[3])
    n = max(1, w["requests"])
    return {k: v / n for k, v in calls.items()}, w["requests"]


# ------------------------------------------------------------ callgrind

def callgrind_run(tag, mode, n, up_port, redis_port, workers, redis=None):
    port, admin = free_port(), free_port()
    # (valgrind is slow: a connection's setup, a TLS handshake among it,
    # gets more than the usual bound)
    conf = idemproxy_conf("cg-" + tag, port, admin, up_port, redis_port, workers, redis, "5s")
    outpat = os.path.join(OUT, "callgrind.%s.%%p.out" % tag)
    for f in os.listdir(OUT):
        if f.startswith("callgrind.%s." % tag):
            os.unlink(os.path.join(OUT, f))
    p = start("callgrind-" + tag, ["valgrind", "--tool=callgrind", "--trace-children=yes",
                                   "--callgrind-out-file=" + outpat, BIN, "-c", conf], SERVER_CPU,
              env=dict(os.environ, **IDEM_ENV))
    try:
        wait_ready(admin, p, 120)
        c = http.client.HTTPConnection(HOST, port, timeout=30)
        for i in range(n):
            if mode == "first":
                st, rep, _ = post(c, "/v1/orders", "cg-%s-%d" % (tag, i))
                ok = st == 201 and rep == "false"
            elif mode == "replay":
                st, rep, _ = post(c, "/v1/orders", "cgreplay-%d" % (i % REPLAY_KEYS))
                ok = st == 201 and rep == "true"
            else:
                st, rep, _ = post(c, "/v1/passthrough")
                ok = st == 201
            if not ok:
                raise RuntimeError("callgrind %s request %d: %d %s" % (tag, i, st, rep))
        c.close()
    finally:
        stop(p, 120)
    files = [os.path.join(OUT, f) for f in os.listdir(OUT) if f.startswith("callgrind.%s." % tag)]
    total = 0
    for f in files:
        with open(f) as fh:
            for line in fh:
                if line.startswith("totals:") or line.startswith("summary:"):
                    total += int(line.split()[1])
                    break
    return total, files


def annotate(files):
    """{function: self Ir} over the given callgrind files."""
    out = {}
    for f in files:
        r = subprocess.run(["callgrind_annotate", "--inclusive=no", "--auto=no", "--threshold=100", f],
                           capture_output=True, text=True)
        lines = r.stdout.splitlines()
        start = [i for i, line in enumerate(lines) if line.rstrip().endswith("file:function")]
        for line in lines[start[0] + 2 if start else len(lines):]:
            m = re.match(r"^\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+(.+)$", line)
            if not m:
                if line.strip() == "":
                    break
                continue
            name = m.group(2)
            fn = re.sub(r"\s+\[.*\]$", "", name)
            fn = fn.rsplit(":", 1)[-1]
            obj = re.search(r"\[([^\]]*)\]$", name)
            obj = os.path.basename(obj.group(1)) if obj else ""
            k = "%s (%s)" % (fn, obj) if obj else fn
            out[k] = out.get(k, 0) + int(m.group(1).replace(",", ""))
    return out


# ------------------------------------------------------------ memory

def mem_storm(port, run, total, threads=100):
    per = total // threads
    errors = []

    def one(t):
        c = http.client.HTTPConnection(HOST, port, timeout=30)
        try:
            for i in range(per):
                st, _, _ = post(c, "/v1/orders", "%s-%d-%d" % (run, t, i))
                if st != 201:
                    errors.append(st)
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))
        finally:
            c.close()

    ts = [threading.Thread(target=one, args=(t,)) for t in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return per * threads, errors


# ------------------------------------------------------------ formatting

def ms(us):
    return "%.3f" % (us / 1000.0)


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def table(rows, head):
    w = [max(len(str(r[i])) for r in rows + [head]) for i in range(len(head))]
    line = lambda r: "  ".join(str(c).rjust(w[i]) if i else str(c).ljust(w[i]) for i, c in enumerate(r))
    out = [line(head), "  ".join("-" * x for x in w)]
    out += [line(r) for r in rows]
    return "\n".join(out)


def sh(argv):
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        return r.stdout + r.stderr
    except Exception:  # noqa: BLE001
        return "?"


def first_line(s):
    s = s.strip().splitlines()
    return s[0] if s else "?"


# ------------------------------------------------------------ main

def start_deployments():
    """The TLS, replicated and cluster Redis, on the load CPU. {k: dict}"""
    certs = redisdeploy.Certs(os.path.join(OUT, "certs"))
    out = {}

    def server(name, **kw):
        srv = redisdeploy.Server(os.path.join(OUT, name), **kw)
        p = start(name, srv.args(), LOAD_CPU)
        wait_port(srv.port, p)
        return srv, p

    tls, tls_p = server("redis-tls", tls=certs)
    out["t"] = dict(k="t", row="7", label="TLS redis", pids=[tls_p.pid],
                    redis="url = rediss://127.0.0.1:%d/0\ntls_ca_file = %s\n" % (tls.port, certs.ca),
                    flush=None)
    m, m_p = server("redis-master")
    r, r_p = server("redis-replica", extra=["--replicaof", HOST, str(m.port)])
    redisdeploy.replicas_online(m.port, 1, 30)
    out["a"] = dict(k="a", row="8", label="replicas_ack = 1", pids=[m_p.pid, r_p.pid],
                    redis="url = redis://127.0.0.1:%d/0\nreplicas_ack = 1\n"
                          "replicas_ack_timeout = 100ms\n" % m.port,
                    flush=lambda: redisdeploy.cmd(m.port, "FLUSHALL"))
    c = redisdeploy.Cluster(os.path.join(OUT, "cluster"), masters=3, replicas=0)
    c.start()
    pids = [n.proc.pid for n in c.nodes]
    if PIN:
        for pid in pids:
            subprocess.run(["taskset", "-pc", LOAD_CPU, str(pid)], capture_output=True)

    def flush_cluster():
        for _, port in c.masters():
            redisdeploy.cmd(port, "FLUSHALL")
    out["c"] = dict(k="c", row="9", label="cluster of 3", pids=pids, cluster=c,
                    redis="cluster_nodes = %s\n" % c.seeds(3), flush=flush_cluster)
    atexit.register(c.stop)
    for d in out.values():
        d["port"], d["admin"] = free_port(), free_port()
    return out


def stop_deployments(dep):
    for d in dep.values():
        if "cluster" in d:
            d["cluster"].stop()


def main():
    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):
        if f.startswith("callgrind.") or f.endswith(".log"):
            os.unlink(os.path.join(OUT, f))
    t_start = time.monotonic()

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
    node_pkgs = {}
    for pkg in ("express", "express-idempotency", "express-idempotency-redis-adapter", "@redis/client"):
        try:
            with open(os.path.join(NODE_DIR, "node_modules", pkg, "package.json")) as f:
                node_pkgs[pkg] = json.load(f)["version"]
        except OSError:
            node_pkgs[pkg] = "?"

    log("== idemproxy benchmark")
    log("machine: %d cores (nproc), %s, %s, kernel %s" % (NCPU, cpu_model, osname, os.uname().release))
    log("versions: %s; nginx %s; %s; node %s; wrk %s; %s" % (
        first_line(sh([BIN, "-V"])),
        first_line(sh(["nginx", "-v"])).split("/")[-1],
        first_line(sh(["redis-server", "--version"])).split(" sha=")[0],
        first_line(sh(["node", "--version"])),
        first_line(sh(["wrk", "-v"])).split(" [")[0].replace("wrk ", ""),
        ", ".join("%s %s" % kv for kv in node_pkgs.items())))
    if PIN:
        log("pinning: measured server (nginx proxy, idemproxy, node) on CPU %s; wrk, the nginx "
            "upstream and redis-server on CPU %s (taskset -c)" % (SERVER_CPU, LOAD_CPU))
        if SERVER_CPU == LOAD_CPU:
            log("pinning: everything on one CPU (BENCH_SERVER_CPU = BENCH_LOAD_CPU): no cross-CPU "
                "wake-ups, req/s shares one core between load, upstream, redis and server")
    else:
        log("pinning: off (only %d core)" % NCPU)
    log("method: wrk -t1 -c%d -d%ds --latency and wrk -t1 -c1 -d%ds --latency, %d rounds, scenarios "
        "interleaved in each round; the table shows medians over rounds. CPU us/req = utime+stime "
        "(/proc/<pid>/stat, whole process tree) of the measured server over the run / requests wrk "
        "completed." % (CONNS, DUR, C1DUR, ROUNDS))

    # ---- shared redis and upstream
    redis_port, up_port = free_port(), free_port()
    storm_log = os.path.join(OUT, "nginx-upstream", "storm.log")
    if os.path.exists(storm_log):
        os.unlink(storm_log)
    redis_p = start("redis", ["redis-server", "--port", str(redis_port), "--bind", HOST,
                              "--save", "", "--appendonly", "no", "--maxmemory-policy", "noeviction",
                              "--dir", OUT, "--daemonize", "no"], LOAD_CPU)
    up_p = start_nginx("nginx-upstream", "nginx-upstream", """    default_type application/json;
    map $arg_storm $storm_req { "" 0; default 1; }
    log_format storm '$arg_storm $request_method $uri $http_idempotency_key';
    server {
        listen 127.0.0.1:%d default_server backlog=4096;
        access_log %s storm if=$storm_req;   # storm requests only (?storm=ID)
        location = /nginx_status { stub_status; }
        location / { return 201 '%s'; }
    }
""" % (up_port, storm_log, UP_BODY), LOAD_CPU)
    wait_port(redis_port, redis_p)
    wait_port(up_port, up_p)
    rds = Redis(redis_port)

    # ---- the other Redis deployments, their processes on the load CPU
    dep = start_deployments()

    # ---- servers under test
    ngx_port = free_port()
    ngx_p = start_nginx("nginx-proxy", "nginx-proxy", """    upstream app {
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
    }
""" % (up_port, ngx_port), SERVER_CPU)

    idem_port, idem_admin = free_port(), free_port()
    conf = idemproxy_conf("idemproxy", idem_port, idem_admin, up_port, redis_port, True)
    chk = subprocess.run([BIN, "-t", "-c", conf], capture_output=True, text=True)
    workers = chk.returncode == 0
    if workers:
        log("idemproxy config: `workers = 1` accepted by `idemproxy -t`, written into the bench config")
    else:
        log("idemproxy config: `workers = 1` refused by `idemproxy -t` (%s), omitted: this build "
            "runs one event loop" % first_line(chk.stdout + chk.stderr))
        conf = idemproxy_conf("idemproxy", idem_port, idem_admin, up_port, redis_port, False)
        chk = subprocess.run([BIN, "-t", "-c", conf], capture_output=True, text=True)
        if chk.returncode != 0:
            raise RuntimeError("bench config refused: " + chk.stdout + chk.stderr)
    log("idemproxy config: %s (route orders: POST /v1/orders, fingerprint_body = json, ttl 24h, "
        "lease 60s > upstream_timeout 30s; /v1/passthrough matches no route; log level warn)" % conf)
    if IDEM_ENV:
        log("idemproxy environment: %s (IDEMPROXY_ENV)" % " ".join("%s=%s" % kv for kv in IDEM_ENV.items()))
    idem_p = start("idemproxy", [BIN, "-c", conf], SERVER_CPU, env=dict(os.environ, **IDEM_ENV))

    node_env = dict(os.environ, NODE_ENV="production", UPSTREAM_PORT=str(up_port),
                    REDIS_URL="redis://127.0.0.1:%d/0" % redis_port)
    nidem_port, nbare_port = free_port(), free_port()
    nidem_p = start("node-idem", ["node", "server.js"], SERVER_CPU,
                    env=dict(node_env, MODE="idem", PORT=str(nidem_port)), cwd=NODE_DIR)
    nbare_p = start("node-bare", ["node", "server.js"], SERVER_CPU,
                    env=dict(node_env, MODE="bare", PORT=str(nbare_port)), cwd=NODE_DIR)
    for d in dep.values():
        dconf = idemproxy_conf("idemproxy-" + d["k"], d["port"], d["admin"], up_port, redis_port,
                               workers, redis=d["redis"])
        chk = subprocess.run([BIN, "-t", "-c", dconf], capture_output=True, text=True)
        if chk.returncode != 0:
            raise RuntimeError("bench config refused: " + chk.stdout + chk.stderr)
        d["proc"] = start("idemproxy-" + d["k"], [BIN, "-c", dconf], SERVER_CPU,
                          env=dict(os.environ, **IDEM_ENV))
    log("idemproxy on other deployments (same routes, one process each): %s" % "; ".join(
        "%s: %s" % (d["label"], d["redis"].strip().replace("\n", ", ")) for d in dep.values()))
    wait_port(ngx_port, ngx_p)
    wait_ready(idem_admin, idem_p)
    for d in dep.values():
        wait_ready(d["admin"], d["proc"])
    wait_port(nidem_port, nidem_p)
    wait_port(nbare_port, nbare_p)

    # ---- scenarios
    def flush():
        rds.cmd("FLUSHALL")

    def warm_idem():
        st, rep, _ = warm_keys(idem_port, "bench-replay")
        if st != 201 or rep != "true":
            raise RuntimeError("idemproxy replay warm-up: %d replayed=%s" % (st, rep))

    def warm_node():
        warm_keys(nidem_port, "node-replay")
        rec = rds.cmd("GET", "node-replay-0")
        if rec is None or b'"response"' not in rec:
            raise RuntimeError("express-idempotency did not store node-replay-0: %r" % rec)

    S = [
        dict(k="upstream", label="1 upstream alone (nginx return 201)", port=up_port, mode="plain",
             path="/v1/orders", proc=up_p),
        dict(k="nginx", label="2 nginx reverse proxy", port=ngx_port, mode="plain",
             path="/v1/orders", proc=ngx_p),
        dict(k="pass", label="3 idemproxy pass-through route", port=idem_port, mode="plain",
             path="/v1/passthrough", proc=idem_p),
        dict(k="first", label="4 idemproxy first requests", port=idem_port, mode="first",
             path="/v1/orders", proc=idem_p, prep=flush),
        dict(k="replay", label="5 idemproxy replays", port=idem_port, mode="replay",
             path="/v1/orders", proc=idem_p, prep=warm_idem, run="bench-replay"),
        dict(k="nfirst", label="6a express-idempotency first", port=nidem_port, mode="first",
             path="/v1/orders", proc=nidem_p, prep=flush),
        dict(k="nreplay", label="6b express-idempotency replays", port=nidem_port, mode="replay",
             path="/v1/orders", proc=nidem_p, prep=warm_node, run="node-replay"),
        dict(k="nbare", label="6c express, no middleware", port=nbare_port, mode="plain",
             path="/v1/orders", proc=nbare_p),
    ]
    for d in dep.values():
        S.append(dict(k=d["k"] + "first", label="%sa idemproxy first, %s" % (d["row"], d["label"]),
                      port=d["port"], mode="first", path="/v1/orders", proc=d["proc"],
                      redis_pids=d["pids"], prep=d["flush"]))
        S.append(dict(k=d["k"] + "replay", label="%sb idemproxy replays, %s" % (d["row"], d["label"]),
                      port=d["port"], mode="replay", path="/v1/orders", proc=d["proc"],
                      redis_pids=d["pids"], run="bench-replay-" + d["k"],
                      prep=lambda d=d: warm_keys(d["port"], "bench-replay-" + d["k"])))
    res = {s["k"]: {"c50": [], "c1": [], "checks": []} for s in S}
    seq = [0]

    def measure(s, conns, dur, record=True, attempt=0):
        if s.get("prep"):
            s["prep"]()
        seq[0] += 1
        run = s.get("run") or ("r%d-%d-%s" % (os.getpid(), seq[0], s["k"]))
        pids = proc_tree(s["proc"].pid)
        m0 = metrics(idem_admin) if s["proc"] is idem_p else None
        u0 = upstream_requests(up_port)
        rpids = s.get("redis_pids") or [redis_p.pid]
        c0, b0, t0 = cpu_ticks(pids), cpu_busy(SERVER_CPU), time.monotonic()
        l0, r0 = cpu_busy(LOAD_CPU), cpu_ticks(rpids)
        w = run_wrk(s["port"], s["mode"], s["path"], conns, dur, run)
        c1, b1, t1 = cpu_ticks(pids), cpu_busy(SERVER_CPU), time.monotonic()
        l1, r1 = cpu_busy(LOAD_CPU), cpu_ticks(rpids)
        # is the measured server saturated, or the other core (wrk, upstream, redis)?
        w["server_cpu_pct"] = 100.0 * (c1 - c0) / CLK_TCK / (t1 - t0)
        w["load_cpu_pct"] = 100.0 * (l1 - l0) / CLK_TCK / (t1 - t0)
        w["redis_us_per_req"] = (r1 - r0) * 1e6 / CLK_TCK / max(1, w["requests"])
        # CPU 0 time not spent by the measured server: other tenants of the machine
        # (row 1's server is on CPU 1: not checked)
        other = (b1 - b0) - (c1 - c0)
        w["cpu0_other_pct"] = max(0.0, 100.0 * other / CLK_TCK / (t1 - t0)) \
            if PIN and s["k"] != "upstream" and SERVER_CPU != LOAD_CPU else None
        time.sleep(0.05)
        u1 = upstream_requests(up_port)
        w["cpu_us_per_req"] = (c1 - c0) * 1e6 / CLK_TCK / max(1, w["requests"])
        w["rps"] = w["requests"] / (w["duration_us"] / 1e6)
        w["errors"] = w["err_connect"] + w["err_read"] + w["err_write"] + w["err_status"] + w["err_timeout"]
        w["upstream_calls"] = u1 - u0 - 1
        if m0 is not None:
            m1 = metrics(idem_admin)
            w["idem_outcomes"] = {k: m1.get(k, 0) - m0.get(k, 0) for k in m1 if m1.get(k, 0) != m0.get(k, 0)}
        if s["k"] == "nfirst":
            w["redis_keys"] = rds.cmd("DBSIZE")
        if record and w["cpu0_other_pct"] is not None and w["cpu0_other_pct"] > MAX_OTHER \
                and RETRIES[0] > 0 and attempt < 3:
            RETRIES[0] -= 1
            log("  (%s, %d conn: other processes used %.0f%% of CPU %s; again in 5 s, %d retries left)"
                % (s["label"], conns, w["cpu0_other_pct"], SERVER_CPU, RETRIES[0]))
            time.sleep(5)
            return measure(s, conns, dur, record, attempt + 1)
        if record:
            res[s["k"]]["c50" if conns > 1 else "c1"].append(w)
        return w

    log("\n== warm-up: 1 s per scenario at %d connections (not recorded)" % CONNS)
    for s in S:
        measure(s, CONNS, 1, record=False)
    for r in range(ROUNDS):
        log("== round %d/%d" % (r + 1, ROUNDS))
        for s in S:
            w = measure(s, CONNS, DUR)
            w1 = measure(s, 1, C1DUR)
            log("  %-34s %9.0f req/s  p50 %s ms  p99 %s ms  p50@1 %s ms  %6.1f us CPU/req  errors %d"
                "  server CPU %.0f%%  CPU %s (load) %.0f%%  redis %.1f us/req  CPU %s used by others %.0f%%" % (
                    s["label"], w["rps"], ms(w["p50_us"]), ms(w["p99_us"]), ms(w1["p50_us"]),
                    w["cpu_us_per_req"], w["errors"] + w1["errors"], w["server_cpu_pct"],
                    LOAD_CPU, w["load_cpu_pct"], w["redis_us_per_req"],
                    SERVER_CPU, w["cpu0_other_pct"] or 0))

    # ---- syscalls per request
    sysc = {}
    if subprocess.run(["sh", "-c", "command -v strace"], capture_output=True).returncode == 0:
        log("\n== syscalls per request (strace -c -f on the measured server during a 2 s wrk run at "
            "%d connections; tracing slows it, the counts per request are what matters)" % CONNS)
        for s in S:
            if s["k"] not in ("nginx", "pass", "first", "replay"):
                continue
            if s.get("prep"):
                s["prep"]()
            pids = proc_tree(s["proc"].pid)
            if s["k"] == "nginx":
                pids = [p for p in pids if p != s["proc"].pid]  # the worker
            per, n = strace_counts(pids, s["port"], s["mode"], s["path"],
                                   s.get("run") or "strace-%s-%d" % (s["k"], os.getpid()))
            sysc[s["k"]] = per
            top = sorted(per.items(), key=lambda kv: -kv[1])
            log("  %-34s %5.1f syscalls/request (%d requests): %s" % (
                s["label"], sum(per.values()), n,
                ", ".join("%s %.2f" % kv for kv in top if kv[1] >= 0.05)))

    # ---- storms
    log("\n== storm: %d connections, one request each, the same fresh key, released together "
        "(threads + barrier); %d storms per target; executions = lines the upstream nginx "
        "logged for that storm (access_log only for ?storm=ID)" % (STORM_N, STORMS))
    storms = {}
    for name, port in (("idemproxy", idem_port), ("express-idempotency", nidem_port)):
        execs, outcomes = [], {}
        for i in range(STORMS):
            sid = "s%d%s%d" % (os.getpid(), name[:4], i)
            rr = storm_once(port, "/v1/orders?storm=" + sid, "storm-" + sid)
            time.sleep(0.3)
            execs.append(count_storm_lines(storm_log, sid))
            for o in rr:
                outcomes[o] = outcomes.get(o, 0) + 1
        storms[name] = dict(executions=execs, outcomes=outcomes)
        log("  %-20s executions per storm: %s; answers: %s" % (
            name, " ".join(map(str, execs)),
            ", ".join("%s x%d" % kv for kv in sorted(outcomes.items()))))

    # ---- memory (a fresh idemproxy)
    stop(idem_p)
    log("\n== memory: a fresh idemproxy (RSS from /proc/<pid>/status, whole process tree)")
    mem = {}
    mport, madmin = free_port(), free_port()
    mconf = idemproxy_conf("idemproxy-mem", mport, madmin, up_port, redis_port, workers)
    mp = start("idemproxy-mem", [BIN, "-c", mconf], SERVER_CPU, env=dict(os.environ, **IDEM_ENV))
    wait_ready(madmin, mp)
    flush()
    mpids = lambda: proc_tree(mp.pid)
    c = http.client.HTTPConnection(HOST, mport, timeout=10)
    for i in range(100):
        post(c, "/v1/passthrough")
        post(c, "/v1/orders", "mem-warm-%d" % i)
    c.close()
    time.sleep(0.3)
    mem["start"] = rss_kb(mpids())
    idle = []
    for i in range(1000):
        idle.append(socket.create_connection((HOST, mport), timeout=10))
    time.sleep(0.5)
    mem["idle_connected"] = rss_kb(mpids())
    req = ("POST /v1/passthrough HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           "Content-Length: %d\r\n\r\n%s" % (len(BODY), BODY)).encode()
    for s in idle:  # one request each, one at a time: 1,000 idle keep-alive connections after it
        s.sendall(req)
        data = b""
        while b"\r\n\r\n" not in data or not data.endswith(UP_BODY.encode()):
            chunk = s.recv(65536)
            if not chunk:
                raise RuntimeError("idle connection closed by idemproxy")
            data += chunk
    time.sleep(0.5)
    mem["idle_keepalive"] = rss_kb(mpids())
    for s in idle:
        s.close()
    time.sleep(1.0)
    mem["after_idle_closed"] = rss_kb(mpids())
    n1, e1 = mem_storm(mport, "mem1-%d" % os.getpid(), 10000)
    time.sleep(1.0)
    mem["after_10k_keys"] = rss_kb(mpids())
    n2, e2 = mem_storm(mport, "mem2-%d" % os.getpid(), 10000)
    time.sleep(1.0)
    mem["after_20k_keys"] = rss_kb(mpids())
    mem["peak"] = rss_kb(mpids(), "VmHWM")
    mem["storm_errors"] = len(e1) + len(e2)
    mem["threads"] = 100
    stop(mp)
    for k in ("start", "idle_connected", "idle_keepalive", "after_idle_closed", "after_10k_keys",
              "after_20k_keys", "peak"):
        log("  %-20s %7.1f MB" % (k, mem[k] / 1024.0))
    if mem["storm_errors"]:
        log("  key storms: %d requests were not 201: %s" % (mem["storm_errors"], (e1 + e2)[:5]))

    # ---- callgrind
    cg = {}
    if CG_N > 0:
        log("\n== callgrind: instructions per request = (Ir(2N requests) - Ir(N requests)) / N, "
            "N = %d, sequential requests on one keep-alive connection" % CG_N)
        wp, wa = free_port(), free_port()
        wconf = idemproxy_conf("idemproxy-warm", wp, wa, up_port, redis_port, workers)
        wproc = start("idemproxy-warm", [BIN, "-c", wconf], SERVER_CPU, env=dict(os.environ, **IDEM_ENV))
        wait_ready(wa, wproc)
        warm_keys(wp, "cgreplay")
        stop(wproc)
        runs = [(mode, mode, None) for mode in ("pass", "first", "replay")]
        if CG_DEP:
            for d in dep.values():
                rconf = d["redis"]
                wp, wa = free_port(), free_port()
                wconf = idemproxy_conf("idemproxy-warm-" + d["k"], wp, wa, up_port, redis_port,
                                       workers, rconf)
                wproc = start("idemproxy-warm-" + d["k"], [BIN, "-c", wconf], SERVER_CPU,
                              env=dict(os.environ, **IDEM_ENV))
                wait_ready(wa, wproc)
                warm_keys(wp, "cgreplay")
                stop(wproc)
                runs += [(d["k"] + mode, mode, rconf) for mode in ("first", "replay")]
        for name, mode, rconf in runs:
            t1, f1 = callgrind_run(name + "-n", mode, CG_N, up_port, redis_port, workers, rconf)
            t2, f2 = callgrind_run(name + "-2n", mode, 2 * CG_N, up_port, redis_port, workers, rconf)
            per = (t2 - t1) / CG_N
            a1, a2 = annotate(f1), annotate(f2)
            fns = {k: (a2.get(k, 0) - a1.get(k, 0)) / CG_N for k in set(a1) | set(a2)}
            top = sorted(fns.items(), key=lambda kv: -kv[1])[:12]
            cg[name] = dict(ir_n=t1, ir_2n=t2, ir_per_request=per, top=top)
            log("  %-7s Ir(N) %d  Ir(2N) %d  -> %.0f instructions/request" % (name, t1, t2, per))
            for k, v in top:
                log("      %8.0f  %5.1f%%  %s" % (v, 100.0 * v / per if per else 0, k))

    stop_all()
    stop_deployments(dep)

    # ---- the table
    def agg(k):
        c50, c1 = res[k]["c50"], res[k]["c1"]
        return dict(rps=med([w["rps"] for w in c50]),
                    rps_rounds=[w["rps"] for w in c50],
                    p50=med([w["p50_us"] for w in c50]), p99=med([w["p99_us"] for w in c50]),
                    p50c1=med([w["p50_us"] for w in c1]),
                    cpu=med([w["cpu_us_per_req"] for w in c50]),
                    errors=sum(w["errors"] for w in c50 + c1),
                    other=med([w["cpu0_other_pct"] for w in c50]),
                    srv=med([w["server_cpu_pct"] for w in c50]),
                    load=med([w["load_cpu_pct"] for w in c50]),
                    redis=med([w["redis_us_per_req"] for w in c50]),
                    upstream_calls=sum(w["upstream_calls"] for w in c50 + c1),
                    requests=sum(w["requests"] for w in c50 + c1),
                    last=c50[-1] if c50 else {})
    A = {s["k"]: agg(s["k"]) for s in S}
    base = A["nginx"]["rps"]

    def ratio(k, ref="nginx"):
        """median over rounds of req/s(k) / req/s(ref) in the same round"""
        return med([a / b for a, b in zip(A[k]["rps_rounds"], A[ref]["rps_rounds"]) if b])
    rows = []
    for s in S:
        a = A[s["k"]]
        rows.append([s["label"], "%.0f" % a["rps"], "%.2f" % ratio(s["k"]), ms(a["p50"]), ms(a["p99"]),
                     ms(a["p50c1"]), "%.1f" % a["cpu"], str(a["errors"]),
                     "%.0f / %.0f" % (a["srv"], a["load"]), "%.1f" % a["redis"],
                     "%.0f" % a["other"] if a["other"] is not None else "-",
                     " / ".join("%.0f" % x for x in a["rps_rounds"])])
    log("\n== results (median of %d rounds; %d connections unless stated; %d s runs, %d s at one connection)"
        % (ROUNDS, CONNS, DUR, C1DUR))
    log(table(rows, ["scenario", "req/s", "x nginx", "p50 ms", "p99 ms", "p50@1conn ms",
                     "CPU us/req", "errors", "busy % srv/load", "redis us/req", "CPU0 others %",
                     "req/s per round"]))
    log("CPU us/req is the measured server's: row 1 the upstream nginx (master+worker), row 2 the proxy "
        "nginx (master+worker), rows 3-5 and 7-9 idemproxy, rows 6a-6c node. "
        "Rows 7-9: idemproxy on a TLS redis-server, on a master with one replica with "
        "replicas_ack = 1 (a WAIT after each loop turn's writes), on a Redis Cluster of three "
        "masters; their redis us/req is those servers' CPU. "
        "x nginx: median over rounds of req/s / nginx req/s in the same round. busy %% srv/load: "
        "the measured server's CPU use and the load core's (wrk, upstream, redis) busy share, "
        "so a row whose server is not near 100%% is limited by the other core. redis us/req: "
        "redis-server CPU per request. CPU0 others %%: "
        "share of CPU 0 (the measured server's) used by anything else during the run (median); "
        "high values mean another tenant of the machine competed (runs over %.0f%% are "
        "repeated, %d retries were left)." % (MAX_OTHER, RETRIES[0]))
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
        log("  %-34s requests %8d  upstream calls %8d%s" % (s["label"], a["requests"],
                                                            a["upstream_calls"], extra))

    # ---- targets
    T = []

    def target(name, ok, detail):
        T.append((name, "met" if ok else "MISSED", detail))

    def ratio_t(name, k, want):
        r = ratio(k)
        target(name, r >= want, "%.2fx nginx (target >= %.1fx; %+.0f%%)" % (r, want, (r / want - 1) * 100))

    def cpu_t(name, k, want):
        v = A[k]["cpu"]
        target(name, v <= want, "%.1f us (target <= %d us; %+.0f%%)" % (v, want, (v / want - 1) * 100))

    def lat_t(name, k, want_ms):
        v = A[k]["p50c1"] / 1000.0
        target(name, v <= want_ms, "%.3f ms (target <= %.2f ms; %+.0f%%)" % (v, want_ms, (v / want_ms - 1) * 100))

    ratio_t("replays req/s", "replay", 1.0)
    cpu_t("replays CPU/request", "replay", 30)
    ratio_t("first requests req/s", "first", 0.6)
    cpu_t("first requests CPU/request", "first", 45)
    ratio_t("pass-through req/s", "pass", 0.9)
    for k, nk, name in (("first", "nfirst", "first"), ("replay", "nreplay", "replays")):
        r = ratio(k, nk)
        target("vs express-idempotency, %s" % name, r >= 10,
               "%.1fx (target >= 10x; %+.0f%%)" % (r, (r / 10 - 1) * 100))
    ex = storms["idemproxy"]["executions"]
    target("storm: exactly one execution", all(x == 1 for x in ex),
           "idemproxy %s; express-idempotency %s" % (
               " ".join(map(str, ex)), " ".join(map(str, storms["express-idempotency"]["executions"]))))
    lat_t("p50 at one connection, first", "first", 0.20)
    lat_t("p50 at one connection, replay", "replay", 0.08)
    v = mem["idle_keepalive"] / 1024.0
    target("RSS with 1,000 idle connections", v <= 32, "%.1f MB (target <= 32 MB; %+.0f%%)" % (v, (v / 32 - 1) * 100))
    grow = (mem["after_20k_keys"] - mem["after_10k_keys"]) / 1024.0
    target("RSS bounded after 10,000 keys", grow <= 2.0 and mem["storm_errors"] == 0,
           "start %.1f MB, after 10k keys %.1f MB, after 20k %.1f MB (second 10k: %+.1f MB)" % (
               mem["after_idle_closed"] / 1024.0, mem["after_10k_keys"] / 1024.0,
               mem["after_20k_keys"] / 1024.0, grow))
    log("\n== targets")
    log(table([list(t) for t in T], ["target", "", "measured"]))
    with open(os.path.join(OUT, "results.json"), "w") as f:
        json.dump(dict(results=res, medians=A, storms=storms, memory=mem,
                       callgrind={k: dict(v, top=v["top"]) for k, v in cg.items()}, syscalls=sysc,
                       idemproxy_env=IDEM_ENV, retries_left=RETRIES[0], max_other=MAX_OTHER,
                       targets=T, workers_option=workers, pinned=PIN,
                       duration=DUR, c1_duration=C1DUR, rounds=ROUNDS, connections=CONNS),
                  f, indent=1, default=str)
    log("\nall processes stopped; raw results in build/bench/results.json, logs in build/bench/ "
        "(%.0f s in all)" % (time.monotonic() - t_start))


if __name__ == "__main__":
    main()
