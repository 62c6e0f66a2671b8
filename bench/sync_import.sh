#!/usr/bin/env bash
# The standby's cost per imported record (decode with protobuf-c's malloc
# against the node's arena decoder, and decoding alone) and the time of a
# bulk resync of 1,000,000 connections between two in-process sync nodes
# (tests/sync/bench_import.c says how), and whether one core keeps up with
# BENCH_RATE new connections/s (100000) for BENCH_RATE_SECS (5) of wall
# clock without a growing lag. BENCH_IMPORT_N (200000) records,
# BENCH_RESYNC_M (1000000) connections, BENCH_ROUNDS (3).
set -eu
cd "$(dirname "$0")/.."
BIN=build/tests/sync/bench_import
[ -x "$BIN" ] || { echo "not ok - $BIN missing: run make first"; exit 1; }
"$BIN" "${BENCH_IMPORT_N:-200000}" "${BENCH_RESYNC_M:-1000000}" "${BENCH_ROUNDS:-3}" \
	"${BENCH_RATE:-100000}" "${BENCH_RATE_SECS:-5}"
