#!/bin/sh
# Installs what idemproxy needs to build and test, from Debian 12 packages.
# The one list of packages: make, make test, make run, CI and the Dockerfile
# all call this script. `--check` only says whether anything is missing.
# clang-14 and libclang-rt-14-dev (the libFuzzer and sanitizer runtimes) are
# for `make fuzz` (test/fuzz/fuzz.mk). groff-base is for `make docs-test`,
# which renders the man pages in doc/ (minimal images such as debian:12-slim
# have no groff). prometheus (2.42: the server and promtool) is for `make
# deploy-test`: promtool checks and unit-tests the alert rules, and a real
# Prometheus scrapes idemproxy and evaluates them (on a machine with systemd
# the package also starts its own service on :9090; the tests use their own).
# python3-websockets (both ends of the WebSocket tests), slowhttptest (the
# slowloris, slow-body and slow-read runs) and chromium (headless: the
# browser test, test/e2e/test_browser.py) are for `make test`'s streaming
# and transparency tests.
# libssl-dev is OpenSSL for TLS to Redis (libevent-dev has its
# bufferevent_openssl). redis-tools is redis-cli, which the cluster tests
# use to create and reshard a Redis Cluster; openssl makes the tests'
# certificates. The sentinel tests run `redis-server --sentinel`, so the
# redis-sentinel package (which would start a system sentinel) is not needed.
PKGS="build-essential pkg-config libevent-dev libhiredis-dev libxxhash-dev
libinih-dev libjansson-dev libcmocka-dev libssl-dev redis-server redis-tools openssl
python3 python3-pytest python3-yaml curl clang-14 libclang-rt-14-dev groff-base prometheus
python3-websockets slowhttptest chromium"
# npm installs the retrying client test/e2e drives (test/clients, `npm ci`
# from the Makefile); Debian's nodejs and npm unless a Node.js with npm is
# already there.
command -v npm >/dev/null 2>&1 || PKGS="$PKGS nodejs npm"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
[ "$1" = "--check" ] && { echo "missing:$missing"; exit 1; }
echo "installing:$missing" >&2
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing
