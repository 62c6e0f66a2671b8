# Build of the HA load balancer. `make` builds everything into build/;
# `make test` installs dependencies, builds and runs every suite;
# `make demo` installs, builds and runs the lab demo.
#
# Layout (docs/architecture.md): one folder per library or program, each
# built from its own folder by a wildcard, so a file's folder decides what it
# is linked into:
#   common/  libcommon.a  logging, clock, number and sockaddr helpers
#   lb/      liblb.a      the pure engine (no I/O, no threads, no files)
#   sync/    libsync.a    the replication protocol (pure, like the engine)
#   conf/    libconf.a    the configuration file (libconfig)
#   drill/   libdrill.a   the drills; drill/lbdrill.c is the program
#   fastpath/ libfastpath.a  the kernel fast path: fp.bpf.c (clang -target
#            bpf, embedded as a bpftool skeleton) and its libbpf loader
#   lbd/     lbd          the daemon around the engine
#   agent/   libagent.a   health checks (in lbd); agent/lbctl.c is lbctl
# Every compile sees include/ (public headers) and, through quoted includes,
# its own folder: a folder's private headers are on no other include path.
# Only sync/ (and its tests) see build/gen/, the code protoc-c makes of
# sync/lbsync.proto; only fastpath/ sees build/gen/fastpath/, the skeleton
# bpftool makes of fastpath/fp.bpf.c.

CC      ?= cc
PKGS    := libnetfilter_queue libmnl libconfig libprotobuf-c libsodium libpcap libsystemd jansson \
           libcurl libmicrohttpd libcap-ng libseccomp libbpf
CFLAGS  ?= -O2 -g
CFLAGS  += -std=gnu11 -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
           -Wmissing-prototypes -Wno-missing-field-initializers \
           -D_GNU_SOURCE -Iinclude -pthread \
           $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS  := $(LDFLAGS) $(shell pkg-config --libs $(PKGS) 2>/dev/null) -pthread

# B is the build directory (`make tsan` builds the same tree into build/tsan);
# objects go under O so that build/lbd the program and lbd/ the folder differ.
B := build
O := $(B)/obj

GEN_C := $(B)/gen/lbsync.pb-c.c
GEN_H := $(B)/gen/lbsync.pb-c.h

objs = $(patsubst %.c,$(O)/%.o,$(1))

COMMON_OBJS := $(call objs,$(wildcard common/*.c))
LB_OBJS     := $(call objs,$(wildcard lb/*.c))
SYNC_OBJS   := $(call objs,$(wildcard sync/*.c)) $(O)/gen/lbsync.pb-c.o
CONF_OBJS   := $(call objs,$(wildcard conf/*.c))
DRILL_OBJS  := $(call objs,$(filter-out drill/lbdrill.c,$(wildcard drill/*.c)))
LBD_OBJS    := $(call objs,$(wildcard lbd/*.c))
AGENT_OBJS  := $(call objs,$(filter-out agent/lbctl.c,$(wildcard agent/*.c)))
FP_OBJS     := $(call objs,$(filter-out %.bpf.c,$(wildcard fastpath/*.c)))
FP_BPF_O    := $(B)/gen/fastpath/fp.bpf.o
FP_SKEL     := $(B)/gen/fastpath/fp.skel.h

# Link order: a library before the ones it uses.
LIBS := $(B)/libdrill.a $(B)/libconf.a $(B)/libsync.a $(B)/libfastpath.a $(B)/liblb.a \
	$(B)/libcommon.a

UNIT_SRCS := $(wildcard tests/lb/test_*.c tests/sync/test_*.c tests/drill/test_*.c \
                        tests/conf/test_*.c tests/common/test_*.c tests/lbd/test_*.c \
                        tests/agent/test_*.c tests/fastpath/test_*.c)
UNIT_BINS := $(patsubst %.c,$(B)/%,$(UNIT_SRCS))
# Benchmark programs beside the unit tests (bench/*.sh run them).
BENCH_BINS := $(patsubst %.c,$(B)/%,$(wildcard tests/*/bench_*.c))
TOOLS     := $(B)/lbd $(B)/lbctl $(B)/lbdrill

.PHONY: all tools test demo deps clean unit bench fuzz tsan tsan-build install deb drills \
	asan asan-build soak fastpath-takeover failover-repeat
all: $(TOOLS) $(UNIT_BINS) $(BENCH_BINS)
tools: $(TOOLS)

$(GEN_C) $(GEN_H): sync/lbsync.proto
	@mkdir -p $(B)/gen
	protoc-c --proto_path=sync --c_out=$(B)/gen $<

# Generated code is not ours to hold to our warning set.
$(O)/gen/lbsync.pb-c.o: $(GEN_C)
	@mkdir -p $(dir $@)
	$(CC) -O2 -g $(SAN) -std=gnu11 -I$(B)/gen $(shell pkg-config --cflags libprotobuf-c) \
		-c -o $@ $<

# Only the sync protocol and its tests see the generated header.
$(O)/sync/%.o $(B)/tests/sync/% $(B)/tests/fuzz/%: EXTRA_INC := -I$(B)/gen

# The tc program; its skeleton embeds the object into the loader. The BPF
# target needs the multiarch include directory for asm/types.h.
$(FP_BPF_O): fastpath/fp.bpf.c fastpath/fp_abi.h include/fp_counter.h
	@mkdir -p $(dir $@)
	clang -O2 -g -target bpf -Wall -Werror -Iinclude -Ifastpath \
		-I/usr/include/$(shell $(CC) -dumpmachine) -c -o $@ $<
$(FP_SKEL): $(FP_BPF_O)
	bpftool gen skeleton $< name fp_bpf > $@.tmp && mv $@.tmp $@
$(O)/fastpath/%.o: EXTRA_INC := -I$(B)/gen/fastpath
$(FP_OBJS): $(FP_SKEL)

$(O)/%.o: %.c | $(GEN_H)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SAN) $(EXTRA_INC) -MMD -MP -c -o $@ $<

$(B)/libcommon.a: $(COMMON_OBJS)
$(B)/liblb.a: $(LB_OBJS)
$(B)/libsync.a: $(SYNC_OBJS)
$(B)/libconf.a: $(CONF_OBJS)
$(B)/libdrill.a: $(DRILL_OBJS)
$(B)/libagent.a: $(AGENT_OBJS)
$(B)/libfastpath.a: $(FP_OBJS)
$(B)/lib%.a:
	@rm -f $@
	ar rcs $@ $^

$(B)/lbd: $(LBD_OBJS) $(B)/libagent.a $(B)/libconf.a $(B)/libsync.a $(B)/libfastpath.a \
		$(B)/liblb.a $(B)/libcommon.a
	$(CC) $(CFLAGS) $(SAN) -o $@ $^ $(LDLIBS)

$(B)/lbctl: $(O)/agent/lbctl.o $(B)/libcommon.a
	$(CC) $(CFLAGS) $(SAN) -o $@ $^ $(LDLIBS)

# A sweep forks once per failover point: lbdrill binds every symbol at start,
# so that no child resolves one of its own (and copies the page it patches).
$(B)/lbdrill: $(O)/drill/lbdrill.o $(LIBS)
	$(CC) $(CFLAGS) $(SAN) -o $@ $^ -Wl,-z,now $(LDLIBS)

$(B)/tests/%: tests/%.c $(B)/libagent.a $(LIBS) | $(GEN_H)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SAN) $(EXTRA_INC) -MMD -MP -o $@ $< $(B)/libagent.a $(LIBS) $(LDLIBS) -lcmocka

deps:
	deploy/install-deps

unit: all
	tests/run unit

# ThreadSanitizer: the unit suites (the replay suite among them) built into
# build/tsan; `make tsan` builds and runs them, `make test` runs them too.
# Any report fails its suite.
TSAN_B := build/tsan
tsan-build:
	$(MAKE) B=$(TSAN_B) SAN="-fsanitize=thread -O1" \
		$(patsubst $(B)/%,$(TSAN_B)/%,$(UNIT_BINS))

tsan: tsan-build
	tests/run tsan

# AddressSanitizer and UndefinedBehaviorSanitizer: the same unit suites (the
# replay suite among them) built into build/asan; `make asan` builds and
# runs them, `make test` runs them too. Any report fails its suite.
ASAN_B := build/asan
asan-build:
	$(MAKE) B=$(ASAN_B) SAN="-fsanitize=address,undefined -fno-sanitize-recover=all \
		-fno-omit-frame-pointer -O1" $(patsubst $(B)/%,$(ASAN_B)/%,$(UNIT_BINS))

asan: asan-build
	tests/run asan

test: deps
	$(MAKE) all tsan-build asan-build
	tests/run

demo: deps
	$(MAKE) all
	deploy/demo

# The full drills over the public capture corpus (make test runs a subset),
# then the live drill with 40 x 64 MiB downloads in plain, loss and defer
# modes (make test runs a short one); pictures in build/drills/.
drills: deps
	$(MAKE) all
	tests/corpus/run.sh
	tests/drills_bulk.sh

# Steady traffic through the lab pair with a failover every 20 s, for
# SOAK_SECONDS (default 300): no connection lost, lbd's memory flat, every
# packet accounted for. A one-minute version (soak_minute) is in make test.
soak: deps
	$(MAKE) all
	bash tests/soak/soak.sh

# Repeated failovers: a failover every 3 s for a minute through the lab pair,
# no stream lost (tests/integration/failover_repeat.sh, 20 s, is in make test).
failover-repeat: deps
	$(MAKE) all
	FAILOVER_REPEAT_SECONDS=$${FAILOVER_REPEAT_SECONDS:-60} bash tests/integration/failover_repeat.sh

# The fast path across takeovers, a known open problem (docs/operations.md);
# not part of `make test`. FP_TAKEOVER_ROUNDS rounds (default 5).
fastpath-takeover: deps
	$(MAKE) all
	tests/fastpath_takeover.sh

# Benchmarks compare in one run and report ratios; not part of `make test`.
bench: deps
	$(MAKE) all
	bench/run

# libFuzzer harnesses of every parser (tests/fuzz/), FUZZ_SECONDS each.
fuzz: deps
	deploy/install-deps fuzz
	$(MAKE) all
	tests/fuzz/run

clean:
	rm -rf build

# `make install`: programs, lb-notify, systemd unit, man pages and example
# configurations, the way a distribution lays them out. PREFIX (/usr/local),
# sysconfdir (/etc), DESTDIR (staging root) as usual; the Debian package
# (debian/rules) installs with PREFIX=/usr. lb-notify goes to
# $(libexecdir)/lbd, root-owned, as keepalived's script security wants.
PREFIX     ?= /usr/local
sbindir    ?= $(PREFIX)/sbin
bindir     ?= $(PREFIX)/bin
libexecdir ?= $(PREFIX)/lib
mandir     ?= $(PREFIX)/share/man
docdir     ?= $(PREFIX)/share/doc/lbd
sysconfdir ?= /etc
unitdir    ?= $(PREFIX)/lib/systemd/system
INSTALL    ?= install
install: tools
	$(INSTALL) -d $(DESTDIR)$(sbindir) $(DESTDIR)$(bindir) $(DESTDIR)$(libexecdir)/lbd \
		$(DESTDIR)$(mandir)/man1 $(DESTDIR)$(mandir)/man5 $(DESTDIR)$(mandir)/man8 \
		$(DESTDIR)$(unitdir) $(DESTDIR)$(docdir)/examples/pair
	$(INSTALL) -d -m 0750 $(DESTDIR)$(sysconfdir)/lbd
	$(INSTALL) -m 0755 $(B)/lbd $(B)/lbctl $(DESTDIR)$(sbindir)/
	$(INSTALL) -m 0755 $(B)/lbdrill $(DESTDIR)$(bindir)/
	$(INSTALL) -m 0755 deploy/keepalived/lb-notify deploy/pair/lbpair drill/plot_timeline.py \
		$(DESTDIR)$(libexecdir)/lbd/
	sed 's|@SBINDIR@|$(sbindir)|g; s|@SYSCONFDIR@|$(sysconfdir)|g' deploy/systemd/lbd.service.in \
		>$(DESTDIR)$(unitdir)/lbd.service
	chmod 0644 $(DESTDIR)$(unitdir)/lbd.service
	$(INSTALL) -m 0644 man/lbdrill.1 $(DESTDIR)$(mandir)/man1/
	$(INSTALL) -m 0644 man/lbd.conf.5 $(DESTDIR)$(mandir)/man5/
	$(INSTALL) -m 0644 man/lbd.8 man/lbctl.8 $(DESTDIR)$(mandir)/man8/
	$(INSTALL) -m 0644 deploy/pair/example.inventory \
		$(DESTDIR)$(docdir)/examples/pair/
	$(INSTALL) -m 0644 docs/operations.md docs/configuration.md $(DESTDIR)$(docdir)/
	$(INSTALL) -m 0644 deploy/lbd.conf.example $(DESTDIR)$(docdir)/examples/lbd.conf

# `make deb`: the Debian package, built with dpkg-buildpackage from a copy
# of the tracked tree (it writes next to the source, so not into the
# checkout's parent); the .deb lands in $(B)/deb/.
deb:
	deploy/build-deb $(B)/deb

-include $(shell find $(B) -name '*.d' 2>/dev/null)
