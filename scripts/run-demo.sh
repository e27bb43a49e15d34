#!/usr/bin/env bash
# `make run`: a local redis-server, the demo upstream and idemproxy with
# conf/idemproxy.conf, in the foreground. Ctrl-C stops all three.
set -u
cd "$(dirname "$0")/.."
DIR=build/demo
mkdir -p "$DIR"
PIDS=()
stop() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    echo "stopped."
}
trap stop EXIT
trap 'exit 0' INT TERM

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in 6379 9000 8080 9901; do
    if port_busy "$p"; then
        echo "port $p on 127.0.0.1 is already in use: stop what listens there (ss -ltnp 'sport = :$p') and run make run again." >&2
        exit 1
    fi
done

redis-server --port 6379 --bind 127.0.0.1 --dir "$DIR" --appendonly yes \
    --appendfsync everysec --save '' --maxmemory-policy noeviction \
    --logfile "$PWD/$DIR/redis.log" &
PIDS+=($!)
python3 scripts/demo_upstream.py --port 9000 2>"$DIR/upstream.log" &
PIDS+=($!)
for i in $(seq 50); do port_busy 6379 && port_busy 9000 && break; sleep 0.1; done
./proxy/idemproxy -c conf/idemproxy.conf 2> >(tee "$DIR/idemproxy.log" >&2) &
PIDS+=($!)
for i in $(seq 50); do port_busy 8080 && break; sleep 0.1; done

cat <<'TXT'

idemproxy is listening on http://127.0.0.1:8080 in front of the demo API on
:9000, with redis on :6379 and its admin on :9901. Try it in another shell:

  # 1. first request: executed, 201, Idempotent-Replayed: false
  curl -si -X POST localhost:8080/v1/orders -H 'Idempotency-Key: 7f6c1a9e-demo-1' \
       -H 'Content-Type: application/json' -d '{"sku":"book","qty":1}'
  # 2. the same again: the stored answer, same orderId, Idempotent-Replayed: true
  #    (same command as 1)
  # 3. same key, other payload: 409 IDEMPOTENCY_KEY_MISMATCH
  curl -si -X POST localhost:8080/v1/orders -H 'Idempotency-Key: 7f6c1a9e-demo-1' \
       -d '{"sku":"book","qty":2}'
  # 4. no key: 400 IDEMPOTENCY_KEY_REQUIRED
  curl -si -X POST localhost:8080/v1/orders -d '{"sku":"book","qty":1}'
  # 5. in flight: a slow first request (?sleep=5), and a duplicate while it runs
  curl -s -X POST 'localhost:8080/v1/orders?sleep=5' -H 'Idempotency-Key: slow-1' -d '{}' &
  sleep 1; curl -si -X POST 'localhost:8080/v1/orders?sleep=5' -H 'Idempotency-Key: slow-1' -d '{}'
  # 6. jobs scoped by tenant: first 201, replay 200 with the same jobId
  curl -si -X POST localhost:8080/jobs -H 'Idempotency-Key: job-1' \
       -d '{"tenantId":"tenant_123","type":"email","payload":{"to":"user@example.com"}}'
  # 7. any other path streams: a 500 MB export, then server-sent events, one a second
  curl -s localhost:8080/v1/export?mb=500 | sha256sum
  curl -sN localhost:8080/v1/events?n=5
  # the records in Redis (one string each), and the metrics:
  redis-cli get "$(redis-cli --scan --pattern 'idem:*' | head -1)"
  curl -s localhost:9901/metrics | grep requests_total | grep -v ' 0$'

Logs: build/demo/. Ctrl-C stops everything.
TXT
wait "${PIDS[2]}"
