#!/usr/bin/env bash
# `make bench`: installs the benchmark-only tools if missing (wrk, nginx, curl,
# strace, valgrind, perf from Debian; the Node peers' npm packages from
# package-lock.json), then runs bench.py, which starts everything on
# 127.0.0.1, measures, stops everything and prints one table of every figure
# against its target (also written to build/bench/report.md). Overrides:
# BENCH_DURATION, BENCH_ROUNDS, BENCH_STREAM_MB, BENCH_IDLE_CONNS,
# BENCH_CALLGRIND_N, BENCH_BEFORE and more: the list is bench.py's docstring.
set -euo pipefail
cd "$(dirname "$0")"

need=""
command -v wrk >/dev/null || need="$need wrk"
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need="$need nginx"
command -v curl >/dev/null || need="$need curl"
command -v valgrind >/dev/null || need="$need valgrind"
command -v perf >/dev/null || need="$need linux-perf"
command -v strace >/dev/null || need="$need strace"
command -v taskset >/dev/null || need="$need util-linux"
command -v redis-server >/dev/null || need="$need redis-server"
command -v node >/dev/null || need="$need nodejs"
command -v npm >/dev/null || need="$need npm"
if [ -n "$need" ]; then
    echo "bench: installing benchmark-only packages:$need" >&2
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $need
fi
export PATH="$PATH:/usr/sbin"

if [ ! -d node/node_modules ] || [ node/package-lock.json -nt node/node_modules ]; then
    echo "bench: npm ci in scripts/bench/node" >&2
    (cd node && npm ci --no-audit --no-fund --loglevel=error)
fi

# 10,000 idle connections need as many descriptors in bench.py and in
# idemproxy (bench.py raises its soft limit to the hard one too)
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

exec /usr/bin/python3 bench.py
