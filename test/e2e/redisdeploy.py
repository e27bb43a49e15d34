"""Redis deployments for the tests, the chaos run and the benchmark, as real
processes on 127.0.0.1 free ports: a CA and certificates made by openssl,
TLS Redis, a master with replicas watched by three sentinels
(`redis-server --sentinel`), and a Redis Cluster made with `redis-cli
--cluster create`. Every process is started by a helper here and stopped by
its stop(); every wait is bounded. Python standard library only."""
import binascii
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
from ports import free_port  # noqa: E402  (test/ports.py)
import resp  # noqa: E402  (test/resp.py)

HOST = "127.0.0.1"
REDIS_BIN = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"
OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"


def wait_for(pred, timeout, step=0.05):
    """pred() until truthy, at most timeout seconds; its last value."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            v = pred()
        except (OSError, resp.RedisError, ConnectionError):
            v = None
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(step)


def port_open(port):
    try:
        socket.create_connection((HOST, port), timeout=0.2).close()
        return True
    except OSError:
        return False


def cmd(port, *args, password=None, timeout=3.0):
    """One command on a plain connection; errors raised."""
    return resp.command(port, *args, password=password, timeout=timeout)


def info_field(port, section, name, password=None):
    """A field of INFO section, or of CLUSTER INFO (section "cluster-info")."""
    args = ("CLUSTER", "INFO") if section == "cluster-info" else ("INFO", section)
    text = cmd(port, *args, password=password).decode()
    for line in text.splitlines():
        if line.startswith(name + ":"):
            return line.split(":", 1)[1]
    return None


def key_slot(key):
    """Redis Cluster's slot of a key (CRC16-XMODEM of its hash tag)."""
    k = key.encode() if isinstance(key, str) else key
    o = k.find(b"{")
    if o >= 0:
        e = k.find(b"}", o + 1)
        if e > o + 1:
            k = k[o + 1:e]
    return binascii.crc_hqx(k, 0) & 16383


def replicas_online(master_port, n, timeout=15, key="replicas-online-probe", password=None):
    """Until n replicas acknowledge a write (WAIT n): "state=online" is not
    enough, a replica just synced acknowledges only from its first
    REPLCONF ACK, up to a second later."""
    def online():
        text = cmd(master_port, "INFO", "replication", password=password).decode()
        if text.count("state=online") < n:
            return False
        with resp.RedisClient(master_port) as c:
            if password:
                c.cmd("AUTH", password)
            c.cmd("SET", key, "1")
            return c.cmd("WAIT", n, 100) >= n
    if not wait_for(online, timeout):
        raise RuntimeError("%d replicas not acknowledging at %d after %ss" % (n, master_port, timeout))


# ---------------------------------------------------------------- certificates

class Certs:
    """A CA, a server certificate for 127.0.0.1 and localhost, a client
    certificate, and a second CA that signed none of them."""

    def __init__(self, d):
        self.dir = d
        os.makedirs(d, exist_ok=True)
        p = lambda n: os.path.join(d, n)  # noqa: E731
        self.ca, self.ca_key = p("ca.pem"), p("ca.key")
        self.other_ca, self.other_ca_key = p("other-ca.pem"), p("other-ca.key")
        self.server, self.server_key = p("server.pem"), p("server.key")
        self.client, self.client_key = p("client.pem"), p("client.key")
        self._ca(self.ca, self.ca_key, "idemproxy test CA")
        self._ca(self.other_ca, self.other_ca_key, "some other CA")
        self._leaf(self.server, self.server_key, "redis",
                   "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
        self._leaf(self.client, self.client_key, "idemproxy", "extendedKeyUsage=clientAuth\n")

    def _run(self, *args):
        subprocess.run([OPENSSL] + list(args), check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=60)

    def _ca(self, pem, key, cn):
        self._run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", pem,
                  "-days", "2", "-subj", "/CN=" + cn)

    def _leaf(self, pem, key, cn, ext):
        csr = pem + ".csr"
        extfile = pem + ".ext"
        with open(extfile, "w") as f:
            f.write(ext)
        self._run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr,
                  "-subj", "/CN=" + cn)
        self._run("x509", "-req", "-in", csr, "-CA", self.ca, "-CAkey", self.ca_key,
                  "-CAcreateserial", "-out", pem, "-days", "2", "-extfile", extfile)


# ---------------------------------------------------------------- one server

class Server:
    """One redis-server. tls: a Certs (TLS only, on self.port); auth_clients:
    'no', 'optional' or 'yes' (mutual TLS); extra: more arguments."""

    def __init__(self, d, tls=None, auth_clients="no", extra=(), port=None, cluster=False,
                 sentinel_conf=None):
        self.dir = d
        os.makedirs(d, exist_ok=True)
        self.port = port or free_port()
        self.tls = tls
        self.auth_clients = auth_clients
        self.extra = list(extra)
        self.cluster = cluster
        self.sentinel_conf = sentinel_conf
        self.proc = None
        self.bus_port = None
        self.log = os.path.join(d, "redis-%d.log" % self.port)

    def args(self):
        if self.sentinel_conf is not None:
            return [REDIS_BIN, self.sentinel_conf, "--sentinel"]
        # replicas sync at once (the diskless default waits 5 s for more)
        a = [REDIS_BIN, "--bind", HOST, "--save", "", "--appendonly", "no",
             "--maxmemory-policy", "noeviction", "--dir", self.dir, "--daemonize", "no",
             "--loglevel", "warning", "--logfile", self.log,
             "--repl-diskless-sync-delay", "0"]
        if self.tls is not None:
            a += ["--port", "0", "--tls-port", str(self.port),
                  "--tls-cert-file", self.tls.server, "--tls-key-file", self.tls.server_key,
                  "--tls-ca-cert-file", self.tls.ca, "--tls-auth-clients", self.auth_clients]
        else:
            a += ["--port", str(self.port)]
        if self.cluster:
            # the bus port too from test/ports.py (the default, port + 10000,
            # may be taken or in the ephemeral range)
            if self.bus_port is None:
                self.bus_port = free_port()
            a += ["--cluster-enabled", "yes", "--cluster-config-file",
                  os.path.join(self.dir, "nodes-%d.conf" % self.port),
                  "--cluster-port", str(self.bus_port), "--cluster-node-timeout", "1000",
                  "--cluster-replica-validity-factor", "0"]
        return a + self.extra

    def start(self):
        self.proc = subprocess.Popen(self.args(), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, cwd=self.dir)
        if not wait_for(lambda: self.proc.poll() is None and port_open(self.port), 10):
            self.stop()
            raise RuntimeError("redis-server on %d did not start" % self.port)
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill9(self):
        if self.alive():
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(5)

    def pause(self):
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self):
        self.proc.send_signal(signal.SIGCONT)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGCONT)
            except OSError:
                pass
            self.proc.kill()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        self.proc = None

    def cmd(self, *args, **kw):
        return cmd(self.port, *args, **kw)


class Deployment:
    """Several processes started together: start() runs _start() and stops
    whatever it started when it fails, so nothing outlives a failed start."""

    def start(self):
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise


# ---------------------------------------------------------------- sentinel

class SentinelGroup(Deployment):
    """A master, `replicas` replicas and three sentinels watching them as
    `name`: the master is down after 1 s, a failover takes a few. With a
    password, the servers and the sentinels all require it (as the common
    Helm charts set them up)."""

    def __init__(self, d, name="idem", replicas=1, quorum=2, password=None):
        self.dir = d
        self.name = name
        self.password = password
        self.master = Server(os.path.join(d, "m"))
        self.replicas = [Server(os.path.join(d, "r%d" % i)) for i in range(replicas)]
        self.sentinels = []
        self.quorum = quorum

    def servers(self):
        return [self.master] + self.replicas

    def _start(self):
        pw = ["--requirepass", self.password, "--masterauth", self.password] \
            if self.password else []
        self.master.extra = list(pw)
        self.master.start()
        for r in self.replicas:
            r.extra = ["--replicaof", HOST, str(self.master.port)] + pw
            r.start()
        replicas_online(self.master.port, len(self.replicas), password=self.password)
        for i in range(3):
            d = os.path.join(self.dir, "s%d" % i)
            os.makedirs(d, exist_ok=True)
            port = free_port()
            conf = os.path.join(d, "sentinel.conf")
            with open(conf, "w") as f:
                f.write("port %d\nbind %s\ndaemonize no\ndir %s\nlogfile %s\n"
                        "sentinel monitor %s %s %d %d\n"
                        "sentinel down-after-milliseconds %s 1000\n"
                        "sentinel failover-timeout %s 4000\n"
                        "sentinel parallel-syncs %s 1\n"
                        % (port, HOST, d, os.path.join(d, "sentinel.log"), self.name, HOST,
                           self.master.port, self.quorum, self.name, self.name, self.name))
                if self.password:
                    f.write("sentinel auth-pass %s %s\nrequirepass %s\n"
                            % (self.name, self.password, self.password))
            s = Server(d, port=port, sentinel_conf=conf)
            s.start()
            self.sentinels.append(s)
        # every sentinel knows the replica (it learns it from the master's INFO)
        n = len(self.replicas)
        for s in self.sentinels:
            if not wait_for(lambda: len(cmd(s.port, "SENTINEL", "replicas", self.name,
                                            password=self.password)) >= n, 15):
                raise RuntimeError("sentinel %d did not see the replicas" % s.port)
        return self

    def sentinel_list(self):
        return ", ".join("%s:%d" % (HOST, s.port) for s in self.sentinels)

    def master_addr(self, via=0):
        h, p = cmd(self.sentinels[via].port, "SENTINEL", "get-master-addr-by-name", self.name,
                   password=self.password)
        return h.decode(), int(p)

    def current_master(self):
        """The server the sentinels name as master (its ROLE may lag)."""
        for i in range(len(self.sentinels)):
            try:
                s = self.server_at(self.master_addr(i)[1])
            except (OSError, resp.RedisError, ConnectionError):
                continue
            if s is not None:
                return s
        raise RuntimeError("no sentinel names a master of this group")

    def server_at(self, port):
        for s in self.servers():
            if s.port == port:
                return s
        return None

    def wait_failover(self, old_port, timeout=30):
        """Until every sentinel names a master other than old_port, and it
        says it is a master. Returns the new master's Server."""
        def moved():
            ports = set(self.master_addr(i)[1] for i in range(len(self.sentinels)))
            if len(ports) != 1 or old_port in ports:
                return None
            p = ports.pop()
            role = cmd(p, "ROLE", password=self.password)
            return p if role[0] == b"master" else None
        p = wait_for(moved, timeout, step=0.2)
        if not p:
            raise RuntimeError("no failover within %ss" % timeout)
        return self.server_at(p)

    def stop(self):
        for s in self.sentinels + self.servers():
            s.stop()


# ---------------------------------------------------------------- cluster

class Cluster(Deployment):
    """masters masters with one replica each, made by redis-cli --cluster
    create; node timeout 1 s."""

    def __init__(self, d, masters=3, replicas=1):
        self.dir = d
        self.nodes = [Server(os.path.join(d, "n%d" % i), cluster=True)
                      for i in range(masters * (1 + replicas))]
        self.masters_n = masters
        self.replicas_n = replicas

    def _start(self):
        for n in self.nodes:
            n.start()
        addrs = ["%s:%d" % (HOST, n.port) for n in self.nodes]
        out = subprocess.run([REDIS_CLI, "--cluster", "create"] + addrs +
                             ["--cluster-replicas", str(self.replicas_n), "--cluster-yes"],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        if out.returncode != 0:
            raise RuntimeError("redis-cli --cluster create: %s" % out.stdout.decode()[-2000:])
        self.wait_ok()
        self.wait_synced()
        for nid, port in self.masters():
            replicas_online(port, self.replicas_n, key=self.key_served_by(nid))
        return self

    def key_served_by(self, node_id):
        """A key whose slot node_id serves."""
        ranges = []
        for r in self.topology()[node_id][3]:
            if r.startswith("["):
                continue               # a slot being migrated
            a, _, b = r.partition("-")
            ranges.append((int(a), int(b or a)))
        for i in range(100000):
            k = "probe-%d" % i
            if any(a <= key_slot(k) <= b for a, b in ranges):
                return k
        raise RuntimeError("no key for node %s" % node_id)

    def wait_synced(self, timeout=30):
        """Every replica's link to its master is up."""
        def synced():
            for nid, t in self.topology().items():
                if t[1] == "replica" and "fail" not in t[4] and \
                        info_field(t[0], "replication", "master_link_status") != "up":
                    return False
            return True
        if not wait_for(synced, timeout, step=0.1):
            raise RuntimeError("replicas not in sync after %ss" % timeout)

    def ports(self):
        return [n.port for n in self.nodes if n.alive()]

    def seeds(self, k=2):
        return ", ".join("%s:%d" % (HOST, p) for p in self.ports()[:k])

    def topology(self, via=None):
        """{node id: (port, role, master id or None, [slot ranges], flags)}"""
        port = via or self.ports()[0]
        text = cmd(port, "CLUSTER", "NODES").decode()
        out = {}
        for line in text.strip().splitlines():
            f = line.split()
            nid, addr, flags, master = f[0], f[1], f[2].split(","), f[3]
            p = int(addr.split("@")[0].rsplit(":", 1)[1])
            role = "master" if "master" in flags else "replica"
            out[nid] = (p, role, None if master == "-" else master, f[8:], flags)
        return out

    def masters(self, via=None):
        """[(id, port)] of the masters that serve slots."""
        return sorted([(nid, t[0]) for nid, t in self.topology(via).items()
                       if t[1] == "master" and t[3] and "fail" not in t[4]], key=lambda x: x[1])

    def replica_of(self, master_id, via=None):
        for nid, t in self.topology(via).items():
            if t[2] == master_id:
                return nid, t[0]
        return None

    def node(self, port):
        for n in self.nodes:
            if n.port == port:
                return n
        return None

    def wait_ok(self, timeout=30, exclude=()):
        def ok():
            for p in self.ports():
                if p in exclude:
                    continue
                if info_field(p, "cluster-info", "cluster_state") != "ok":
                    return False
                if int(info_field(p, "cluster-info", "cluster_slots_ok")) != 16384:
                    return False
            return True
        if not wait_for(ok, timeout, step=0.2):
            raise RuntimeError("the cluster is not ok after %ss" % timeout)

    def wait_promoted(self, replica_port, timeout=30):
        def promoted():
            return cmd(replica_port, "ROLE")[0] == b"master"
        if not wait_for(promoted, timeout, step=0.2):
            raise RuntimeError("replica %d not promoted in %ss" % (replica_port, timeout))
        self.wait_ok(timeout)

    def keyslot(self, key):
        return int(cmd(self.ports()[0], "CLUSTER", "KEYSLOT", key))

    def reshard(self, src_id, dst_id, slots, timeout=120):
        """redis-cli --cluster reshard: slots slots from src to dst, keys
        moved with MIGRATE (clients see ASK, then MOVED)."""
        out = subprocess.run([REDIS_CLI, "--cluster", "reshard", "%s:%d" % (HOST, self.ports()[0]),
                              "--cluster-from", src_id, "--cluster-to", dst_id,
                              "--cluster-slots", str(slots), "--cluster-yes",
                              "--cluster-pipeline", "5"],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)
        if out.returncode != 0:
            raise RuntimeError("reshard: %s" % out.stdout.decode()[-2000:])

    def stop(self):
        for n in self.nodes:
            n.stop()
