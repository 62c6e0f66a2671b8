#!/usr/bin/env bash
# Bulk resync of BENCH_RESYNC_LIVE_M (1000000) connections live: two
# processes, each an engine and the real sync node on a UDP socket driven
# as lbd's loop drives it (tests/sync/bench_resync.c says what is lbd's and
# what is not), in a network namespace this script creates, the master on
# 198.18.2.1 and the standby on 198.18.2.2 on its loopback. The master's
# table is seeded through the engine's import API; a worker thread of the
# master creates BENCH_RESYNC_RATE (10000) new connections a second
# through lb_engine_packet() all along. A standby joins, then restarts; for
# each: seconds from its start to ready (ResyncDone), whether <= 3 s is met,
# and the lag of the connections created during its resync (from the SYN to
# the standby's import of its record), each of which must arrive.
set -eu
cd "$(dirname "$0")/.."
BIN=build/tests/sync/bench_resync
[ -x "$BIN" ] || { echo "not ok - $BIN missing: run make first"; exit 1; }
NS=${LAB_PREFIX:-bsr$$}-resync
cleanup() { ip netns del "$NS" 2>/dev/null || true; }
trap cleanup EXIT
ip netns add "$NS"
ip -n "$NS" link set lo up
ip -n "$NS" addr add 198.18.2.1/32 dev lo
ip -n "$NS" addr add 198.18.2.2/32 dev lo
# The bench ends by itself (each resync is bounded at 60 s); the timeout
# bounds it again, whatever happens.
ip netns exec "$NS" timeout 300 "$BIN" "${BENCH_RESYNC_LIVE_M:-1000000}" \
	"${BENCH_RESYNC_RATE:-10000}" 198.18.2.1 198.18.2.2 "${BENCH_RESYNC_HEARTBEAT:-10}"
