#!/usr/bin/env bash
# `make drills`, the live part: the full failover drill with downloads
# (tests/integration/failover_bulk.sh with FAILOVER_BULK_FULL=1: 100 echo
# streams and 40 rate-limited 64 MiB downloads through the VIP across a kill
# of the active) in each mode: plain, 10% sync loss, defer. Prints the
# suites' TAP lines and where each picture is; exits 1 if any check failed.
# The backends run the retransmission floor the operations guide recommends
# (LAB_BACKEND_RTO_MIN, 15ms; empty for the kernel's 200 ms).
set -u
cd "$(dirname "$0")/.."
export LAB_BACKEND_RTO_MIN=${LAB_BACKEND_RTO_MIN-15ms}
printf '# backends rto_min: %s\n' "${LAB_BACKEND_RTO_MIN:-200ms (kernel default)}"
rc=0
for variant in plain loss defer; do
	printf '== failover_bulk, full, %s\n' "$variant"
	FAILOVER_BULK_FULL=1 FAILOVER_VARIANT=$variant \
		timeout --kill-after=10 600 bash tests/integration/failover_bulk.sh || rc=1
done
exit "$rc"
