#!/usr/bin/env bash
# `make drills`: the full drills over the public capture corpus
# (tests/corpus/public, see its SOURCES), with --auto-services:
#   - audit: every drop explained (exit 0);
#   - a defer-mode sweep before every packet: nothing lost (exit 0);
#   - an async sweep before every packet: no takeover failure (exit 0 or 1:
#     only connections in the unsynchronised window);
#   - a defer sweep over a lossy, slower sync link (10% loss, 2 ms): no
#     takeover failure;
#   - the linear sweeps find exactly what the quadratic ones (--sweep-full)
#     find, at every boundary: the same JSON, async and defer.
# Prints TAP lines; exits 1 when any check failed.
set -u
cd "$(dirname "$0")/../.."
LBDRILL=${LB_BUILD_DIR:-build}/lbdrill
FAILS=0
TMP=$(mktemp -d /tmp/lb-drills.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
ok() { printf 'ok - %s\n' "$*"; }
not_ok() { printf 'not ok - %s\n' "$*"; FAILS=$((FAILS + 1)); }
# expect NAME WANTED-EXITS CMD...: runs CMD, checks its exit status.
expect() {
	local name=$1 want=$2 rc out; shift 2
	out=$("$@" 2>&1); rc=$?
	if [[ " $want " == *" $rc "* ]]; then
		ok "$name (exit $rc)"
	else
		not_ok "$name (exit $rc, wanted $want)"
		tail -n 20 <<<"$out" | sed 's/^/# /'
	fi
}
n=0
for f in tests/corpus/public/*.pcap tests/corpus/public/*.pcapng; do
	[ -f "$f" ] || continue
	n=$((n + 1))
	b=$(basename "$f")
	expect "$b: audit, every drop explained" 0 "$LBDRILL" audit "$f" --auto-services
	expect "$b: defer sweep, nothing lost" 0 \
		"$LBDRILL" replay --pcap "$f" --auto-services --sweep --defer
	expect "$b: async sweep, no takeover failure" "0 1" \
		"$LBDRILL" replay --pcap "$f" --auto-services --sweep
	expect "$b: defer sweep, 10% sync loss, 2 ms, no takeover failure" "0 1" \
		"$LBDRILL" replay --pcap "$f" --auto-services --sweep --defer \
		--sync-loss 10% --sync-delay 2
	for mode in "" --defer; do
		"$LBDRILL" replay --pcap "$f" --auto-services --sweep $mode \
			--json "$TMP/lin.json" >/dev/null 2>&1
		"$LBDRILL" replay --pcap "$f" --auto-services --sweep-full $mode \
			--json "$TMP/full.json" >/dev/null 2>&1
		if cmp -s "$TMP/lin.json" "$TMP/full.json"; then
			ok "$b: linear sweep ${mode:-async} = quadratic sweep"
		else
			not_ok "$b: linear sweep ${mode:-async} differs from the quadratic sweep"
		fi
	done
done
[ "$n" -gt 0 ] && ok "corpus: $n captures" || not_ok "corpus: no capture found"
[ "$FAILS" -eq 0 ]
