"""The execution-log checker shared by the fault suite (test/faults) and the
chaos run (scripts/chaos). Python standard library only.

Three sources of truth, all taken from real processes:
  - executions: the test upstream's log (test/e2e/upstream.py), one entry per
    request it executed, with n (its answer's body carries it), t (wall
    clock), the status it answered (None: it reset the connection), key and
    request headers;
  - answers: what the clients got, recorded in a Ledger;
  - records: the Redis hashes idemproxy left behind (HGETALL + PTTL).

The rules (SPEC rows 6-15 and "a claim of a crashed process expires with
its lease"):
  1. A key (route, scope, key) executes again only if
       - the previous execution answered a release_on status (row 12), or
       - Redis lost its data in between (restart without persistence), or
       - the lease had expired since the previous execution, and the
         scenario allows it (crash, upstream timeout/reset, an answer that
         could not be stored or marked: the documented limits).
     Anything else is a duplicate outside the documented limits.
  2. Every non-error answer (one the upstream made: X-Upstream: yes, not a
     release status) comes from an execution of the same key and scope
     (never another tenant's or caller's), and within one Redis "epoch"
     (between data losses) every non-error answer is byte-identical
     (status and body) to the first -- or, where re-execution after the
     lease is allowed, every replay is identical and comes from the key's
     last execution (a late finisher never overwrites a newer answer).
  3. No record is left in state inflight past its lease; every record has an
     expiry; the layout is version 1 with a known state.
"""
import json
import os
import sys
import threading
import time
from collections import Counter, defaultdict

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

RELEASE = set(range(500, 600)) | {408, 425, 429}
STATES = {b"inflight", b"done", b"unstored"}


# ------------------------------------------------------------ redis client

from resp import RedisClient, RedisError  # noqa: E402,F401  (test/resp.py)


STRING_STATES = {b"i": b"inflight", b"d": b"done", b"u": b"unstored"}


def string_record(v):
    """A layout-2 record (a string) as layout 1's fields (doc/record.md):
    {state, owner, fp, created[, status, headers, body]}; {} if it is not
    one."""
    line, nl, rest = v.partition(b"\n")
    f = line.split(b" ")
    if not nl or len(f) < 5 or f[0] != b"2" or f[1] not in STRING_STATES:
        return {}
    out = {b"v": b"2", b"state": STRING_STATES[f[1]], b"owner": f[2], b"fp": f[3], b"created": f[4]}
    if f[1] == b"d" and len(f) == 7:
        hlen = int(f[6])
        out.update({b"status": f[5], b"headers": rest[:hlen], b"body": rest[hlen:]})
    return out


def dump_records(port, prefix="idem:"):
    """{name: (fields dict, pttl ms)} for every record under prefix, of
    either layout (a string record is read into layout 1's fields)."""
    with RedisClient(port) as rc:
        names, cursor = [], b"0"
        while True:
            cursor, batch = rc.cmd("SCAN", cursor, "MATCH", prefix + "*", "COUNT", 1000)
            names += batch
            if cursor in (b"0", 0, "0"):
                break
        cmds = []
        for nm in names:
            cmds.append(("HGETALL", nm))
            cmds.append(("GET", nm))
            cmds.append(("PTTL", nm))
        replies = rc.pipeline(cmds)
    out = {}
    for i, nm in enumerate(names):
        flat, val, pttl = replies[3 * i], replies[3 * i + 1], replies[3 * i + 2]
        if isinstance(flat, RedisError):         # WRONGTYPE: a string record
            fields = string_record(val) if isinstance(val, bytes) else {}
        else:
            fields = dict(zip(flat[0::2], flat[1::2]))
        if not fields:
            continue            # expired between SCAN and the read
        out[nm] = (fields, pttl)
    return out


# ------------------------------------------------------------ client answers

class Answer:
    __slots__ = ("ident", "t0", "t1", "status", "headers", "body", "exc", "via")

    def __init__(self, ident, t0, t1, status=None, headers=None, body=b"", exc=None, via=None):
        self.ident, self.t0, self.t1 = ident, t0, t1
        self.status, self.headers, self.body = status, headers or [], body
        self.exc, self.via = exc, via

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    @property
    def from_upstream(self):
        return self.status is not None and self.header("X-Upstream") == "yes"

    @property
    def replayed(self):
        return self.header("Idempotent-Replayed") == "true"

    @property
    def non_error(self):
        return self.from_upstream and self.status not in RELEASE

    def code(self):
        try:
            return json.loads(self.body)["error"]["code"]
        except Exception:
            return None

    def n(self):
        try:
            v = json.loads(self.body)
            return v.get("n") if isinstance(v, dict) else None
        except Exception:
            return None

    def __repr__(self):
        if self.exc is not None:
            return "Answer(%s: %s)" % (self.ident, self.exc)
        return "Answer(%s: %s %s%s %r)" % (self.ident, self.status, self.code() or "",
                                         " replay" if self.replayed else "", self.body[:120])


class Ledger:
    """Thread-safe list of every answer a client got (or its failure)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.items = []

    def add(self, ans):
        with self.lock:
            self.items.append(ans)
        return ans

    def by_ident(self):
        d = defaultdict(list)
        with self.lock:
            for a in self.items:
                d[a.ident].append(a)
        return d


# ------------------------------------------------------------ the checker

class Report:
    def __init__(self):
        self.violations = []
        self.duplicates = []     # (ident, n_prev, n_next, gap_s, reason, within_limits)
        self.histogram = Counter()
        self.released = 0        # re-executions after a release_on status (row 12)
        self.executions = 0
        self.keys = 0
        self.answers = 0
        self.records = 0

    def bad(self, msg):
        self.violations.append(msg)

    def summary(self):
        lines = ["executions %d over %d keys; answers %d; records %d" %
                 (self.executions, self.keys, self.answers, self.records),
                 "executions per key: " + ", ".join(
                     "%dx: %d" % (k, v) for k, v in sorted(self.histogram.items()))]
        if self.released:
            lines.append("re-executions after a released status (row 12): %d" % self.released)
        by_reason = Counter((d[4], d[5]) for d in self.duplicates)
        for (reason, ok), cnt in sorted(by_reason.items()):
            lines.append("re-executions (%s, %s): %d" %
                         (reason, "within documented limits" if ok else "VIOLATION", cnt))
        return "\n".join(lines)

    def __str__(self):
        s = self.summary()
        if self.violations:
            s += "\nVIOLATIONS (%d):\n  " % len(self.violations) + "\n  ".join(self.violations[:50])
        return s


def default_ident(entry):
    return entry.get("key")


def check(executions, answers, records, lease_s, *, allow_after_lease=False,
          losses=(), protected=("/v1/orders",), ident=default_ident,
          max_exec=None, ttl_s=None, tolerance_s=0.3, now=None, unkeyed_ok=False):
    """executions: the upstream log; answers: a list of Answer (or a Ledger);
    records: dump_records() output; losses: wall-clock times at which Redis
    lost its data (a restart without persistence). Returns a Report."""
    rep = Report()
    if isinstance(answers, Ledger):
        with answers.lock:
            answers = list(answers.items)
    now = time.time() if now is None else now
    losses = sorted(losses)

    def epoch(t):
        return sum(1 for x in losses if x <= t)

    # ---- rule 1: executions per key
    def is_protected(path):
        p = path.split("?", 1)[0]
        return any(p == pp or (pp.endswith("/*") and p.startswith(pp[:-1]))
                   for pp in protected)

    by_n = {}
    per = defaultdict(list)
    for e in executions:
        by_n[e["n"]] = e
        if not is_protected(e["path"]) or e.get("method") != "POST":
            continue
        if e.get("key") is None:
            if not unkeyed_ok:
                rep.bad("executed without an Idempotency-Key on a protected route: n=%d %s"
                        % (e["n"], e["path"]))
            continue
        per[ident(e)].append(e)
    rep.executions = sum(len(v) for v in per.values())
    rep.keys = len(per)
    for k, es in per.items():
        es.sort(key=lambda e: (e["t"], e["n"]))
        rep.histogram[len(es)] += 1
        if max_exec is not None and len(es) > max_exec:
            rep.bad("key %r executed %d times, at most %d allowed here: n=%s"
                    % (k, len(es), max_exec, [e["n"] for e in es]))
        for a, b in zip(es, es[1:]):
            gap = b["t"] - a["t"]
            if a.get("status") in RELEASE:
                rep.released += 1
                continue                       # row 12: released, a retry executes
            if epoch(b["t"]) != epoch(a["t"]):
                rep.duplicates.append((k, a["n"], b["n"], gap, "redis lost its data", True))
                continue
            if gap >= lease_s - tolerance_s:
                rep.duplicates.append((k, a["n"], b["n"], gap, "after the lease", allow_after_lease))
                if not allow_after_lease:
                    rep.bad("key %r executed again %.2fs after n=%d (n=%d): not allowed in this "
                            "scenario" % (k, gap, a["n"], b["n"]))
                continue
            rep.duplicates.append((k, a["n"], b["n"], gap, "inside the lease", False))
            rep.bad("key %r executed twice inside the lease (%.2fs < %.2fs): n=%d then n=%d"
                    % (k, gap, lease_s, a["n"], b["n"]))

    # ---- rule 2: answers
    rep.answers = len(answers)
    per_ans = defaultdict(list)
    for a in answers:
        if a.non_error:
            per_ans[a.ident].append(a)
    for k, ans in per_ans.items():
        ans.sort(key=lambda a: a.t1)
        groups = defaultdict(list)
        for a in ans:
            n = a.n()
            e = by_n.get(n) if n is not None else None
            if n is not None:
                if e is None:
                    rep.bad("key %r got an answer of an execution the upstream never logged "
                            "(n=%r)" % (k, n))
                elif ident(e) != k:
                    rep.bad("key %r got the answer of another key/scope's execution: n=%d "
                            "belongs to %r" % (k, n, ident(e)))
                    continue
            groups[epoch(e["t"] if e is not None else a.t0)].append((a, e))
        for ep, items in groups.items():
            first = items[0][0]
            if not allow_after_lease:
                for a, _ in items[1:]:
                    if (a.status, a.body) != (first.status, first.body):
                        rep.bad("key %r: answer differs from the first: %r vs %r" % (k, a, first))
                continue
            replays = [(a, e) for a, e in items if a.replayed]
            if replays:
                r0 = replays[0][0]
                for a, _ in replays[1:]:
                    if (a.status, a.body) != (r0.status, r0.body):
                        rep.bad("key %r: replay differs from the first replay: %r vs %r"
                                % (k, a, r0))
                last = [e for e in per.get(k, []) if epoch(e["t"]) == ep]
                for a, e in replays:
                    if e is not None and last and e["n"] != last[-1]["n"]:
                        rep.bad("key %r: a replay carries execution n=%d but the key executed "
                                "again later (n=%d): a stored answer was overwritten or "
                                "ignored" % (k, e["n"], last[-1]["n"]))
                        break

    # ---- rule 3: records
    rep.records = len(records)
    lease_ms = lease_s * 1000
    for nm, (h, pttl) in records.items():
        st = h.get(b"state")
        if h.get(b"v") not in (b"1", b"2"):
            rep.bad("record %r: layout version %r" % (nm, h.get(b"v")))
        if st not in STATES:
            rep.bad("record %r: unknown state %r" % (nm, st))
            continue
        if pttl is None or pttl < 0:
            rep.bad("record %r (%s) has no expiry (PTTL %r)" % (nm, st.decode(), pttl))
            continue
        if st == b"inflight":
            try:
                created = int(h.get(b"created"))
            except (TypeError, ValueError):
                rep.bad("record %r: inflight without a created time" % nm)
                continue
            age = now * 1000 - created
            if age > lease_ms + tolerance_s * 1000:
                rep.bad("record %r: claim left past its lease (age %.0f ms, lease %.0f ms)"
                        % (nm, age, lease_ms))
            if pttl > lease_ms + 50:
                rep.bad("record %r: claim expires in %d ms, more than the lease" % (nm, pttl))
        elif ttl_s is not None and pttl > ttl_s * 1000 + 50:
            rep.bad("record %r: expires in %d ms, more than the ttl" % (nm, pttl))
        if st == b"done":
            try:
                status = int(h.get(b"status"))
                assert 100 <= status <= 599
            except Exception:
                rep.bad("record %r: done with status %r" % (nm, h.get(b"status")))
            try:
                n = json.loads(h.get(b"body") or b"").get("n")
            except Exception:
                n = None
            if n is not None and n not in by_n:
                rep.bad("record %r: stores the answer of execution n=%r the upstream never "
                        "logged" % (nm, n))
    return rep
