# lzfs - landing-zone filesystem.
#
# Conventions (so modules can be added without editing this file):
#   store/ ingest/ fuse/   *.c        -> build/liblzfs.a
#   */NAME_main.c                     -> build/NAME          (a program)
#   tests/unit/test_*.c               -> build/tests/test_*  (cmocka, TAP output)
#   tests/unit/lib/*.c                   linked into every unit test
#   tests/bench/bench_*.c             -> build/bench-*
#   tests/e2e/*.sh                       end-to-end scripts run by tests/run
#   tests/fuzz/fuzz_*.c               -> build/fuzz/fuzz_*   (libFuzzer, clang; `make fuzz`)

CC      ?= cc
PREFIX  ?= /usr/local
DESTDIR ?=
PKGS    := fuse3 libcurl sqlite3 expat openssl inih libsystemd libpq

ifeq ($(SAN),1)
BUILD   ?= build/san
OPT     := -O1 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
else
BUILD   ?= build
OPT     := -O2
endif

CFLAGS  ?= -g
CFLAGS  += -std=c11 -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -Wall -Wextra -Werror \
           -Wno-unused-parameter -pthread -Istore -Iingest -Ifuse $(OPT) \
           $(shell pkg-config --cflags $(PKGS))
LDLIBS  := $(shell pkg-config --libs $(PKGS)) -lpthread -lm
LDFLAGS += -pthread $(if $(filter 1,$(SAN)),-fsanitize=address$(comma)undefined)
comma   := ,

MAIN_SRC  := $(wildcard store/*_main.c ingest/*_main.c fuse/*_main.c)
LIB_SRC   := $(filter-out $(MAIN_SRC),$(wildcard store/*.c ingest/*.c fuse/*.c))
UNIT_SRC  := $(wildcard tests/unit/test_*.c)
TLIB_SRC  := $(wildcard tests/unit/lib/*.c)
BENCH_SRC := $(wildcard tests/bench/bench_*.c)

LIB_OBJ   := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
PROGS     := $(foreach f,$(MAIN_SRC),$(BUILD)/$(patsubst %_main.c,%,$(notdir $(f))))
UNITS     := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
BENCHES   := $(foreach f,$(BENCH_SRC),$(BUILD)/$(subst _,-,$(patsubst %.c,%,$(notdir $(f)))))

.PHONY: all check check-unit demo bench bench-s3 bench-catalog bench-scale torture fuzz install uninstall \
        clean deps format compile_commands.json
all: $(PROGS) $(UNITS) $(BENCHES)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/liblzfs.a: $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

define prog_rule
$(BUILD)/$(patsubst %_main.c,%,$(notdir $(1))): $(BUILD)/obj/$(1:.c=.o) $(BUILD)/liblzfs.a
	$$(CC) $$(LDFLAGS) -o $$@ $$^ $$(LDLIBS)
endef
$(foreach f,$(MAIN_SRC),$(eval $(call prog_rule,$(f))))

define bench_rule
$(BUILD)/$(subst _,-,$(patsubst %.c,%,$(notdir $(1)))): $(BUILD)/obj/$(1:.c=.o) $(BUILD)/liblzfs.a
	$$(CC) $$(LDFLAGS) -o $$@ $$^ $$(LDLIBS)
endef
$(foreach f,$(BENCH_SRC),$(eval $(call bench_rule,$(f))))

# What the unit tests share (tests/unit/lib: the test S3, test data).
$(BUILD)/tests/libtest.a: $(TLIB_SRC:%.c=$(BUILD)/obj/%.o)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/obj/tests/unit/%.o: CFLAGS += -Itests/unit/lib

$(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(BUILD)/tests/libtest.a $(BUILD)/liblzfs.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcmocka

-include $(LIB_OBJ:.o=.d) $(MAIN_SRC:%.c=$(BUILD)/obj/%.d) $(UNIT_SRC:%.c=$(BUILD)/obj/%.d) \
         $(TLIB_SRC:%.c=$(BUILD)/obj/%.d) \
         $(BENCH_SRC:%.c=$(BUILD)/obj/%.d)

deps:
	@scripts/deps

# The README's test command. Installs what is missing, builds, runs every test.
check: deps
	@$(MAKE) --no-print-directory all
	@BUILD=$(BUILD) tests/run $(T)

check-unit: all
	@BUILD=$(BUILD) tests/run --unit

demo: deps
	@$(MAKE) --no-print-directory all
	@BUILD=$(BUILD) scripts/demo

bench:
	@scripts/deps --bench
	@$(MAKE) --no-print-directory all
	@BUILD=$(BUILD) QUICK=$(QUICK) tests/bench/run

bench-s3: deps
	@$(MAKE) --no-print-directory all
	@BUILD=$(BUILD) tests/bench/s3.sh

bench-catalog: all
	@BUILD=$(BUILD) tests/bench/catalog.sh

bench-scale: all
	@BUILD=$(BUILD) tests/bench/scale.sh

torture: deps
	@$(MAKE) --no-print-directory all
	@BUILD=$(BUILD) TORTURE=1 tests/run $(T)

# libFuzzer targets, built by clang with ASan+UBSan into build/fuzz and run
# for FUZZ_SECS seconds each (tests/fuzz/run).
FUZZ_CC     ?= clang
FUZZ_SECS   ?= 60
FUZZ_SRC    := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS   := $(FUZZ_SRC:tests/fuzz/%.c=build/fuzz/%)
FUZZ_CFLAGS := -g -O1 -std=c11 -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -Wall -Wextra -Werror \
               -Wno-unused-parameter -pthread -Istore -Iingest -Ifuse \
               -fsanitize=address,undefined -fno-sanitize-recover=undefined \
               $(shell pkg-config --cflags $(PKGS))

.PRECIOUS: build/fuzz/obj/%.o
build/fuzz/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c -o $@ $<

build/fuzz/liblzfs.a: $(LIB_SRC:%.c=build/fuzz/obj/%.o)
	rm -f $@ && ar rcs $@ $^

build/fuzz/fuzz_%: build/fuzz/obj/tests/fuzz/fuzz_%.o build/fuzz/liblzfs.a
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $^ $(LDLIBS)

fuzz:
	@scripts/deps fuzz
	@$(MAKE) --no-print-directory $(FUZZ_BINS)
	@FUZZ_SECS=$(FUZZ_SECS) tests/fuzz/run

# Installs the programs, the systemd unit, the man pages and an example
# configuration. mount -t fuse.lzfs needs no helper of ours: mount.fuse3 runs
# `lzfs` from the default PATH (mount(8) drops the caller's), which has
# /usr/local/bin and /usr/bin. The configuration is always read from /etc/lzfs.
BINDIR     ?= $(PREFIX)/bin
MANDIR     ?= $(PREFIX)/share/man
UNITDIR    ?= $(if $(filter /usr,$(PREFIX)),/lib/systemd/system,$(PREFIX)/lib/systemd/system)
CONFDIR    ?= /etc/lzfs
MANPAGES   := $(wildcard docs/man/*.[1-8])
UNITS_SD   := $(wildcard systemd/*.service)

install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(CONFDIR) \
		$(sort $(foreach m,$(MANPAGES),$(DESTDIR)$(MANDIR)/man$(subst .,,$(suffix $(m)))))
	install -m 755 $(PROGS) $(DESTDIR)$(BINDIR)/
	for u in $(UNITS_SD); do \
		sed 's|@BINDIR@|$(BINDIR)|g' $$u >$(DESTDIR)$(UNITDIR)/$${u##*/} && \
		chmod 644 $(DESTDIR)$(UNITDIR)/$${u##*/} || exit 1; done
	for m in $(MANPAGES); do install -m 644 $$m $(DESTDIR)$(MANDIR)/man$${m##*.}/ || exit 1; done
	install -m 644 docs/lzfs.conf.example $(DESTDIR)$(CONFDIR)/lzfs.conf.example

# Leaves /etc/lzfs/lzfs.conf and anything else an admin put there.
uninstall:
	rm -f $(foreach p,$(PROGS),$(DESTDIR)$(BINDIR)/$(notdir $(p))) \
		$(foreach u,$(UNITS_SD),$(DESTDIR)$(UNITDIR)/$(notdir $(u))) \
		$(foreach m,$(MANPAGES),$(DESTDIR)$(MANDIR)/man$(subst .,,$(suffix $(m)))/$(notdir $(m))) \
		$(DESTDIR)$(CONFDIR)/lzfs.conf.example
	-rmdir $(DESTDIR)$(CONFDIR) 2>/dev/null

compile_commands.json:
	$(MAKE) clean && bear -- $(MAKE) all

format:
	clang-format -i $(LIB_SRC) $(MAIN_SRC) store/*.h ingest/*.h fuse/*.h $(UNIT_SRC)

clean:
	rm -rf build
