# cairn — one non-recursive Makefile. `make help` lists what it does.
# Objects go to build/ (build/san/ with SAN=1). Header dependencies via -MMD.

SAN ?= 0
BUILD := build
SANFLAGS :=
ifeq ($(SAN),1)
BUILD := build/san
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
endif

CC := gcc
WARN := -Wall -Wextra -Werror -Wshadow -Wmissing-prototypes -Wformat=2 -Wvla \
	-Wimplicit-fallthrough -Wno-missing-field-initializers
HARDEN := -D_FORTIFY_SOURCE=2 -fstack-protector-strong -fstack-clash-protection -fPIE
# Size first (-Os, a section per function and object so the linker drops
# what nothing calls, no unwind tables: C has no exceptions, and -g keeps
# what a debugger needs); the hot paths below stay at -O2.
OPT := -Os -ffunction-sections -fdata-sections -fno-asynchronous-unwind-tables -fno-unwind-tables
CFLAGS := -std=gnu11 $(OPT) -g $(WARN) $(HARDEN) $(SANFLAGS) -MMD -MP -I. $(EXTRA_CFLAGS)
LDFLAGS := -pie -Wl,-z,relro,-z,now -Wl,--as-needed -Wl,--gc-sections $(SANFLAGS)
PYTEST := /usr/bin/python3 -m pytest

# Modules, in link order. trails also calls runtime (the engine drives it),
# so binaries that need the engine name runtime's symbols through trails'
# callers first; the unit tests with fake runtimes rely on this order.
MODULES := ctrl runtime plugins trails storage lib
src_of = $(filter-out %_fuzz.c,$(wildcard $(1)/*.c $(1)/*/*.c))
obj_of = $(patsubst %.c,$(BUILD)/%.o,$(call src_of,$(1)))
archive = $(BUILD)/lib$(1).a
ARCHIVES := $(foreach m,$(MODULES),$(if $(call src_of,$(m)),$(call archive,$(m))))

PACK_SRC := $(filter-out tools/pack/main.c,$(wildcard tools/pack/*.c))
PACK_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(PACK_SRC))

LIBS_CRYPTO := -lmbedcrypto
LIBS_CAIRN := -llxc -lmicrohttpd -llz4 -lubootenv $(LIBS_CRYPTO)

BINS := $(BUILD)/cairn-pack \
	$(if $(wildcard init/*.c),$(BUILD)/cairn) \
	$(if $(wildcard tools/ctl/*.c),$(BUILD)/cairnctl)
PROBE := $(BUILD)/probe

UNIT_SRC := $(wildcard test/unit/*_test.c)
UNIT_BINS := $(patsubst test/unit/%.c,$(BUILD)/test/unit/%,$(UNIT_SRC))
FUZZ_SRC := $(wildcard test/fuzz/*_fuzz.c)
REPLAY_BINS := $(patsubst test/fuzz/%_fuzz.c,$(BUILD)/test/replay/%,$(FUZZ_SRC))
FUZZ_BINS := $(patsubst test/fuzz/%_fuzz.c,build/fuzz/%,$(FUZZ_SRC))

.PHONY: all help deps test test-unit test-fuzz test-integration test-qemu test-long bench fuzz run clean
.DEFAULT_GOAL := all

all: $(BINS) $(PROBE)

help:
	@echo "cairn make targets:"
	@echo "  make               build build/cairn, build/cairnctl, build/cairn-pack, build/probe"
	@echo "  make run           boot a demo device in the sandbox (installs missing Debian packages)"
	@echo "  make test          the whole suite: unit, fuzz-corpus replay, integration, qemu (as root)"
	@echo "  make test-unit     cmocka unit tests only"
	@echo "  make test-fuzz     replay the fuzz corpora under gcc"
	@echo "  make test-integration  pytest suites in test/integration (root, real LXC/squashfs)"
	@echo "  make test-qemu     qemu: U-Boot + Debian's kernel boot cairn as PID 1; updates, power cuts (root)"
	@echo "  make run QEMU=1    boot the demo device in qemu (U-Boot, Debian's kernel, cairn as PID 1)"
	@echo "  make test-long     longer soaks (not part of make test)"
	@echo "  make bench         benchmarks in test/bench, each printed as a ratio to a baseline"
	@echo "  make fuzz          libFuzzer (clang) on every target, FUZZ_SECONDS=60 each"
	@echo "  make deps          install missing Debian packages (tools/install-deps)"
	@echo "  make SAN=1 test    unit, fuzz replay, integration under ASan+UBSan (build/san; not qemu)"
	@echo "  make clean         remove build/"

deps:
	@tools/install-deps

# ---- compile ----
$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

# Hashing (every verify) and JSON parsing (every request, every document).
$(BUILD)/lib/digest.o $(BUILD)/lib/json.o: CFLAGS += -O2

define ARCHIVE_RULE
$(call archive,$(1)): $(call obj_of,$(1))
	@mkdir -p $$(dir $$@)
	rm -f $$@ && ar rcs $$@ $$^
endef
$(foreach m,$(MODULES),$(eval $(call ARCHIVE_RULE,$(m))))

$(BUILD)/libpack.a: $(PACK_OBJ)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/cairn-pack: $(BUILD)/tools/pack/main.o $(BUILD)/libpack.a \
		$(foreach m,trails storage lib,$(call archive,$(m)))
	$(CC) $(LDFLAGS) -o $@ $(filter %.o %.a,$^) $(LIBS_CRYPTO)

$(BUILD)/cairn: $(patsubst %.c,$(BUILD)/%.o,$(wildcard init/*.c)) $(ARCHIVES)
	$(CC) $(LDFLAGS) -o $@ $(filter %.o,$^) -Wl,--start-group $(filter %.a,$^) -Wl,--end-group \
		$(LIBS_CAIRN)

$(BUILD)/cairnctl: $(patsubst %.c,$(BUILD)/%.o,$(wildcard tools/ctl/*.c)) $(ARCHIVES)
	$(CC) $(LDFLAGS) -o $@ $(filter %.o %.a,$^) $(LIBS_CRYPTO)

# The probe runs inside test containers: static, no sanitizers.
$(PROBE): test/probe/probe.c
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 -O2 -Wall -Wextra -Werror -static -o $@ $<

# ---- tests ----
$(BUILD)/test/unit/%: test/unit/%.c $(BUILD)/libpack.a $(ARCHIVES)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Wno-missing-prototypes $(LDFLAGS) -o $@ $(filter test/unit/%.c %.a,$^) \
		-lcmocka $(LIBS_CAIRN)

# Compiled as objects (one .d each, so header and included .c changes rebuild).
$(BUILD)/test/fuzz/%.o: CFLAGS += -Wno-missing-prototypes
$(BUILD)/test/replay/%: $(BUILD)/test/fuzz/%_fuzz.o $(BUILD)/test/fuzz/replay.o $(ARCHIVES)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $(filter %.o %.a,$^) $(LIBS_CAIRN)

test-unit: $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; $$t; done

test-fuzz: $(REPLAY_BINS)
	@set -e; for t in $(REPLAY_BINS); do n=$$(basename $$t); \
		echo "== replay $$n"; $$t test/fuzz/corpus/$$n; done

test-integration: all
	CAIRN_BUILD=$(abspath $(BUILD)) $(PYTEST) -q test/integration

# qemu: about 5 minutes on 2 cores (20 power cuts); CAIRN_LONG=1 makes it 200.
# Not under SAN=1: the initramfs would carry the sanitizer runtimes into a
# 512 MiB guest, a setup nobody has checked.
TEST_QEMU := $(if $(filter 1,$(SAN)),,test-qemu)
test-qemu: all
	CAIRN_BUILD=$(abspath $(BUILD)) $(PYTEST) -q test/qemu

test: deps
	@$(MAKE) --no-print-directory all $(UNIT_BINS) $(REPLAY_BINS)
	@$(MAKE) --no-print-directory test-unit test-fuzz test-integration $(TEST_QEMU)

test-long: deps all
	CAIRN_BUILD=$(abspath $(BUILD)) CAIRN_LONG=1 $(PYTEST) -q test/integration
	CAIRN_BUILD=$(abspath $(BUILD)) CAIRN_LONG=1 $(PYTEST) -q test/qemu

bench: deps all
	@set -e; for b in test/bench/*/run; do echo "== $$b"; CAIRN_BUILD=$(abspath $(BUILD)) $$b; done

# libFuzzer: every module compiled again by clang with the fuzzer runtime.
FUZZ_CFLAGS := -std=gnu11 -O1 -g -I. -fsanitize=fuzzer,address,undefined
FUZZ_LIB_SRC := $(foreach m,trails runtime plugins storage lib,$(call src_of,$(m)))
build/fuzz/%: test/fuzz/%_fuzz.c $(FUZZ_LIB_SRC)
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -o $@ $(filter %.c,$^) $(LIBS_CAIRN)

FUZZ_SECONDS ?= 60
fuzz: deps $(FUZZ_BINS)
	@set -e; for f in $(FUZZ_BINS); do n=$$(basename $$f); mkdir -p build/fuzz/corpus-$$n; \
		$$f -max_total_time=$(FUZZ_SECONDS) build/fuzz/corpus-$$n test/fuzz/corpus/$$n; done

run: deps all
	$(if $(filter 1,$(QEMU)),tools/qemu/run --build $(abspath $(BUILD)),tools/demo/run)

clean:
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)
