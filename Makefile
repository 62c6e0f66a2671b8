# Build of the HA load balancer. `make` builds everything into build/;
# `make test` installs dependencies, builds and runs every suite;
# `make demo` installs, builds and runs the lab demo.
#
# Layout: lb/*.c and common/*.c form liblb.a (the pure engine and helpers
# shared by the daemon and the tools); files named lb/lbd_*.c are the
# daemon's I/O around it; agent/ holds the operator tools; tests/lb/test_*.c
# are unit tests, one binary each.

CC      ?= cc
PKGS    := libnetfilter_queue libmnl libconfig
CFLAGS  ?= -O2 -g
CFLAGS  += -std=gnu11 -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
           -Wmissing-prototypes -Wno-missing-field-initializers \
           -D_GNU_SOURCE -Iinclude -Ibuild/gen -pthread \
           $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS  := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -pthread

B := build

LIB_SRCS   := $(filter-out lb/lbd_%.c,$(wildcard lb/*.c)) $(wildcard common/*.c)
LBD_SRCS   := $(wildcard lb/lbd_*.c)
LIB_OBJS   := $(LIB_SRCS:%.c=$(B)/%.o)
LBD_OBJS   := $(LBD_SRCS:%.c=$(B)/%.o)
UNIT_SRCS  := $(wildcard tests/lb/test_*.c tests/common/test_*.c)
UNIT_BINS  := $(patsubst %.c,$(B)/%,$(UNIT_SRCS))
TOOLS      := $(B)/lbd $(B)/lbctl

.PHONY: all test demo deps clean unit
all: $(TOOLS) $(UNIT_BINS)

$(B)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

$(B)/liblb.a: $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(B)/lbd: $(LBD_OBJS) $(B)/liblb.a
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

$(B)/lbctl: $(B)/agent/lbctl.o $(B)/liblb.a
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

$(B)/tests/%: tests/%.c $(B)/liblb.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -o $@ $< $(B)/liblb.a $(LDLIBS) -lcmocka

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

clean:
	rm -rf $(B)

-include $(shell find $(B) -name '*.d' 2>/dev/null)
