#!/usr/bin/env bash
# Memory per connection with CONN_MEMORY_N (1,000,000) established
# connections: the engine alone, then the engine with the kernel fast path's
# maps (tests/fastpath/bench_conn_memory.c says what is counted). The target
# is 192 bytes per connection, engine and maps together; each run prints by
# how much it is missed. The fast path's run needs root (BPF maps).
set -eu
cd "$(dirname "$0")/.."
BIN=build/tests/fastpath/bench_conn_memory
[ -x "$BIN" ] || { echo "not ok - $BIN missing: run make first"; exit 1; }
N=${CONN_MEMORY_N:-1000000}
rc=0
"$BIN" engine "$N" || rc=1
"$BIN" fast "$N" || rc=1
exit $rc
