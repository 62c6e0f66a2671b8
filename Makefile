# Build of the HA load balancer. `make` builds everything into build/;
# `make test` installs dependencies, builds and runs every suite;
# `make demo` installs, builds and runs the lab demo.
#
# Layout: lb/*.c, sync/*.c and common/*.c form liblb.a (the pure engine, the
# sync protocol and helpers shared by the daemon and the tools); files named
# lb/lbd_*.c are the daemon's I/O around it; agent/ holds the operator tools;
# tests/*/test_*.c are unit tests, one binary each. sync/lbsync.proto is
# compiled by protoc-c into build/gen/.

CC      ?= cc
PKGS    := libnetfilter_queue libmnl libconfig libprotobuf-c libsodium libpcap
CFLAGS  ?= -O2 -g
CFLAGS  += -std=gnu11 -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
           -Wmissing-prototypes -Wno-missing-field-initializers \
           -D_GNU_SOURCE -Iinclude -Ibuild/gen -pthread \
           $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS  := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -pthread

B := build

LIB_SRCS   := $(filter-out lb/lbd_%.c,$(wildcard lb/*.c)) $(wildcard sync/*.c) \
              $(wildcard common/*.c)
GEN_C      := $(B)/gen/lbsync.pb-c.c
GEN_H      := $(B)/gen/lbsync.pb-c.h
LBD_SRCS   := $(wildcard lb/lbd_*.c)
LIB_OBJS   := $(LIB_SRCS:%.c=$(B)/%.o) $(B)/gen/lbsync.pb-c.o
LBD_OBJS   := $(LBD_SRCS:%.c=$(B)/%.o)
DRILL_SRCS := $(wildcard agent/drill_*.c)
DRILL_OBJS := $(DRILL_SRCS:%.c=$(B)/%.o)
UNIT_SRCS  := $(wildcard tests/lb/test_*.c tests/sync/test_*.c tests/agent/test_*.c \
                        tests/common/test_*.c)
UNIT_BINS  := $(patsubst %.c,$(B)/%,$(UNIT_SRCS))
TOOLS      := $(B)/lbd $(B)/lbctl $(B)/lbdrill

.PHONY: all test demo deps clean unit bench fuzz
all: $(TOOLS) $(UNIT_BINS)

$(GEN_C) $(GEN_H): sync/lbsync.proto
	@mkdir -p $(B)/gen
	protoc-c --proto_path=sync --c_out=$(B)/gen $<

# Generated code is not ours to hold to our warning set.
$(B)/gen/lbsync.pb-c.o: $(GEN_C)
	$(CC) -O2 -g -std=gnu11 -I$(B)/gen $(shell pkg-config --cflags libprotobuf-c) -c -o $@ $<

$(B)/%.o: %.c | $(GEN_H)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

$(B)/liblb.a: $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(B)/lbd: $(LBD_OBJS) $(B)/liblb.a
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

$(B)/lbctl: $(B)/agent/lbctl.o $(B)/liblb.a
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

$(B)/libdrill.a: $(DRILL_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(B)/lbdrill: $(B)/agent/lbdrill.o $(B)/libdrill.a $(B)/liblb.a
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

$(B)/tests/%: tests/%.c $(B)/libdrill.a $(B)/liblb.a | $(GEN_H)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -o $@ $< $(B)/libdrill.a $(B)/liblb.a $(LDLIBS) -lcmocka

deps:
	deploy/install-deps

unit: all
	tests/run unit

test: deps
	$(MAKE) all
	tests/run

demo: deps
	$(MAKE) all
	deploy/demo

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
	rm -rf $(B)

-include $(shell find $(B) -name '*.d' 2>/dev/null)
