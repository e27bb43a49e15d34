"""Clients for the failover tests: threads that each send new keys through
an idemproxy and retry each one (row 10's 503 and 409 REQUEST_PROCESSING)
until it gets an answer from the upstream, as a client with a retry loop
would; every answer is kept, to check that only the normal ones and row 10
came back."""
import http.client
import json
import threading
import time

HOST = "127.0.0.1"
RETRIED = {"STORE_UNAVAILABLE", "REQUEST_PROCESSING"}


def post(port, key, body, timeout=10.0):
    """(status, error code or None, replayed header, body); status None on a
    connection error."""
    c = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        c.request("POST", "/v1/orders", body=body,
                  headers={"Content-Type": "application/json", "Idempotency-Key": key})
        r = c.getresponse()
        data = r.read()
        code = None
        if r.getheader("Idempotent-Replayed") is None:
            try:
                code = json.loads(data)["error"]["code"]
            except Exception:
                code = None
        return r.status, code, r.getheader("Idempotent-Replayed"), data
    except OSError as e:
        return None, repr(e), None, b""
    finally:
        c.close()


class Traffic:
    def __init__(self, ports, threads=3, prefix="t", give_up=25.0, pause=0.02):
        self.ports = ports if isinstance(ports, list) else [ports]
        self.n = threads
        self.prefix = prefix
        self.give_up = give_up
        self.pause = pause
        self.stop_ev = threading.Event()
        self.lock = threading.Lock()
        self.answers = {}        # key -> [(status, code, replayed)]
        self.done = {}           # key -> body of the upstream's answer
        self.threads = []

    def _run(self, i):
        n = 0
        while not self.stop_ev.is_set():
            n += 1
            k = "%s-%d-%d-%d" % (self.prefix, i, n, int(time.time() * 1000))
            body = json.dumps({"client": i, "n": n}).encode()
            deadline = time.monotonic() + self.give_up
            while True:
                port = self.ports[(n + i) % len(self.ports)]
                st, code, rep, data = post(port, k, body)
                with self.lock:
                    self.answers.setdefault(k, []).append((st, code, rep))
                if st is not None and rep is not None:
                    with self.lock:
                        self.done[k] = data
                    break
                if time.monotonic() > deadline or (st is not None and code not in RETRIED):
                    break
                time.sleep(0.05)
            time.sleep(self.pause)

    def start(self):
        for i in range(self.n):
            t = threading.Thread(target=self._run, args=(i,), daemon=True)
            t.start()
            self.threads.append(t)
        return self

    def stop(self):
        self.stop_ev.set()
        for t in self.threads:
            t.join(self.give_up + 15)
        return self

    def unexpected(self):
        """Answers other than the upstream's (first or replayed) and row 10
        (503 STORE_UNAVAILABLE) or a retry while the first runs (409
        REQUEST_PROCESSING)."""
        bad = []
        for k, ans in self.answers.items():
            for st, code, rep in ans:
                if rep is not None and st == 201:
                    continue
                if st == 503 and code == "STORE_UNAVAILABLE":
                    continue
                if st == 409 and code == "REQUEST_PROCESSING":
                    continue
                bad.append((k, st, code, rep))
        return bad

    def counts(self):
        out = {}
        for ans in self.answers.values():
            for st, code, rep in ans:
                tag = "%s %s" % (st, code or ("replayed" if rep == "true" else "first"))
                out[tag] = out.get(tag, 0) + 1
        return out
