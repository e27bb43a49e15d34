# libFuzzer targets, included from the top-level Makefile.
#
#   make fuzz                    build every target, replay test/fuzz/regress/,
#                                then fuzz each target FUZZ_SECONDS (default 10)
#   make fuzz FUZZ_SECONDS=180   a longer campaign
#   make fuzz-build              only build build-fuzz/fuzz_*
#
# Built with clang 14 (Debian 12: clang-14, libclang-rt-14-dev for the
# libFuzzer runtime) from the lib/*.c sources themselves, instrumented for
# coverage, AddressSanitizer and UndefinedBehaviorSanitizer; the gcc objects
# of build/ are not used. Each target fuzzes a copy of its seed corpus
# (test/fuzz/corpus/<target>/ copied into build-fuzz/corpus/<target>/), so
# new inputs never land in the git tree; crashes are written to
# build-fuzz/artifacts/<target>/ and make the run fail.

FUZZ_CC      ?= clang-14
FUZZ_SECONDS ?= 10
FUZZ_DIR     := build-fuzz
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_PKGS    := libxxhash inih jansson hiredis
FUZZ_CFLAGS  := -std=gnu11 -D_GNU_SOURCE -g -O1 -Wall -Wextra -Werror -Ilib $(FUZZ_SAN) \
                $(shell pkg-config --cflags $(FUZZ_PKGS) 2>/dev/null)
FUZZ_LDLIBS  := $(shell pkg-config --libs $(FUZZ_PKGS) 2>/dev/null) -lm

FUZZ_TARGETS := $(patsubst test/fuzz/%.c,%,$(wildcard test/fuzz/fuzz_*.c))
FUZZ_BINS    := $(FUZZ_TARGETS:%=$(FUZZ_DIR)/%)
FUZZ_LIB_OBJ := $(LIB_SRC:%.c=$(FUZZ_DIR)/%.o)

# Longest input per target: a config file of a few dozen lines, a header
# value (key_max_length is at most 1024) plus a JSON body, a JSON body, a
# stored headers field, a request path, a few Redis replies, an address
# list or URL.
FUZZ_MAXLEN_fuzz_config      := 4096
FUZZ_MAXLEN_fuzz_key         := 2048
FUZZ_MAXLEN_fuzz_fingerprint := 4096
FUZZ_MAXLEN_fuzz_record      := 4096
FUZZ_MAXLEN_fuzz_route       := 512
FUZZ_MAXLEN_fuzz_h1          := 4096
FUZZ_MAXLEN_fuzz_resp        := 4096
FUZZ_MAXLEN_fuzz_addr        := 1024

.PHONY: fuzz fuzz-build fuzz-regress
.SECONDARY: $(FUZZ_LIB_OBJ)

fuzz-build: deps-check $(FUZZ_BINS)

# lib sources: coverage instrumentation without libFuzzer's main().
$(FUZZ_DIR)/lib/%.o: lib/%.c $(wildcard lib/*.h)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

$(FUZZ_DIR)/fuzz_%: test/fuzz/fuzz_%.c $(FUZZ_LIB_OBJ)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_LIB_OBJ) $(FUZZ_LDLIBS)

# Every kept reproducer replays once and must pass (the bugs stay fixed),
# then each target fuzzes for FUZZ_SECONDS; see test/fuzz/run.sh.
fuzz-regress: fuzz-build
	test/fuzz/run.sh regress $(FUZZ_DIR) 0 $(FUZZ_TARGETS)

fuzz: fuzz-regress
	test/fuzz/run.sh fuzz $(FUZZ_DIR) $(FUZZ_SECONDS) \
	    $(foreach t,$(FUZZ_TARGETS),$(t):$(or $(FUZZ_MAXLEN_$(t)),4096))
