# idemproxy: `make` builds proxy/idemproxy; `make test` runs every test;
# `make run` starts a demo; SANITIZER=address|undefined for sanitized builds;
# FAULTS=1 builds proxy/idemproxy-faults with crash points for the fault suite.
CC      ?= cc
PKGS    := libevent libevent_openssl openssl hiredis libxxhash inih jansson
CFLAGS  ?= -O2 -g
CFLAGS  += -std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Werror -Ilib $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS  += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lm
ifneq ($(SANITIZER),)
CFLAGS  += -fsanitize=$(SANITIZER) -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS += -fsanitize=$(SANITIZER)
endif
ifneq ($(FAULTS),)
CFLAGS  += -DIDEM_FAULT_POINTS
endif
VARIANT := $(if $(SANITIZER),-$(SANITIZER))$(if $(FAULTS),-faults)
BUILD   := build$(VARIANT)

LIB_SRC   := $(wildcard lib/*.c)
PROXY_SRC := $(wildcard proxy/*.c)
LIB_OBJ   := $(LIB_SRC:%.c=$(BUILD)/%.o)
PROXY_OBJ := $(PROXY_SRC:%.c=$(BUILD)/%.o)
UNIT_SRC  := $(wildcard test/unit/test_*.c)
UNIT_BIN  := $(UNIT_SRC:test/unit/%.c=$(BUILD)/test/%)
BIN       := proxy/idemproxy$(VARIANT)

.PHONY: all deps test unit e2e faults run clean
all: deps-check $(BIN)

deps-check:
	@scripts/deps.sh --check >/dev/null 2>&1 || scripts/deps.sh

deps:
	scripts/deps.sh

$(BIN): $(PROXY_OBJ) $(BUILD)/libidem.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/libidem.a: $(LIB_OBJ)
	ar rcs $@ $^

$(BUILD)/%.o: %.c $(wildcard lib/*.h proxy/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/test/%: test/unit/%.c $(BUILD)/libidem.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libidem.a $(LDLIBS) -lcmocka

unit: deps-check $(UNIT_BIN)
	@fail=0; for t in $(UNIT_BIN); do $$t || fail=1; done; exit $$fail

# The real retrying client from npm that test/e2e drives (test/clients/):
# npm ci from its package-lock.json, again whenever the lock file changes.
NPM_CLIENTS := test/clients/node_modules/.package-lock.json
$(NPM_CLIENTS): test/clients/package-lock.json
	cd test/clients && npm ci --no-audit --no-fund --loglevel=error

e2e: all $(NPM_CLIENTS)
	IDEMPROXY_BIN=$(CURDIR)/$(BIN) /usr/bin/python3 -m pytest -q test/e2e

FAULTS_BIN := proxy/idemproxy$(if $(SANITIZER),-$(SANITIZER))-faults
faults: all
	$(MAKE) FAULTS=1 $(FAULTS_BIN)
	IDEMPROXY_BIN=$(CURDIR)/$(BIN) IDEMPROXY_FAULTS_BIN=$(CURDIR)/$(FAULTS_BIN) /usr/bin/python3 -m pytest -q test/faults
	IDEMPROXY_BIN=$(CURDIR)/$(BIN) IDEMPROXY_FAULTS_BIN=$(CURDIR)/$(FAULTS_BIN) /usr/bin/python3 scripts/chaos 15 --layout mixed
	IDEMPROXY_BIN=$(CURDIR)/$(BIN) IDEMPROXY_FAULTS_BIN=$(CURDIR)/$(FAULTS_BIN) /usr/bin/python3 scripts/chaos 15 --mode sentinel --clients 12
	IDEMPROXY_BIN=$(CURDIR)/$(BIN) IDEMPROXY_FAULTS_BIN=$(CURDIR)/$(FAULTS_BIN) /usr/bin/python3 scripts/chaos 15 --mode cluster --clients 12

# the raw-socket hostile-input cases alone (CI runs them under the sanitizers)
.PHONY: hostile
hostile: all
	$(MAKE) FAULTS=1 $(FAULTS_BIN)
	IDEMPROXY_BIN=$(CURDIR)/$(BIN) IDEMPROXY_FAULTS_BIN=$(CURDIR)/$(FAULTS_BIN) /usr/bin/python3 -m pytest -q test/faults/test_hostile.py

test: unit e2e faults deploy-test docs-test

# conf/: the Kubernetes example, Grafana dashboard and alert rules (test/deploy:
# promtool's rule tests, and a real Prometheus scraping a running idemproxy)
.PHONY: deploy-test
deploy-test: all
	IDEMPROXY_BIN=$(CURDIR)/$(BIN) /usr/bin/python3 -m pytest -q test/deploy

# doc/ and README against the binary: options, -h flags, man pages render,
# -T openapi (test/docs; scripts/gen-docs rewrites the generated part)
.PHONY: docs-test
docs-test: all
	IDEMPROXY_BIN=$(CURDIR)/$(BIN) /usr/bin/python3 -m pytest -q test/docs

run: all
	scripts/run-demo.sh

clean:
	rm -rf build build-* proxy/idemproxy proxy/idemproxy-*

# `make bench`: every figure of doc/benchmark.md in one run (throughput,
# latency, CPU of idemproxy and of Redis, streaming, memory, storms,
# callgrind, before and after) against nginx and two Node peers
# (scripts/bench/); installs its own benchmark-only tools (wrk, nginx, curl,
# valgrind, perf, npm packages).
.PHONY: bench
bench: all
	scripts/bench/bench.sh

-include test/fuzz/fuzz.mk
