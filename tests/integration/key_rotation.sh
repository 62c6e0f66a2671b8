#!/usr/bin/env bash
# Key rotation without downtime (HA lab). While 60 IPv4 lbdrill streams run
# through the VIP:
#   - a key file lbd refuses (mode 0644) makes a reload say so and keep the
#     key in use: sync goes on;
#   - a new key in the file; the backup (lb2) reloads first: it accepts both
#     keys and keeps sending under the old one, so lb1 still hears it; lb1
#     logs that datagrams (lb2's probes under the new key) fail
#     authentication;
#   - lb1 reloads: within seconds both send under the new key (key state 2)
#     and nothing fails authentication any more;
#   - lb1 dies: lb2, replicated to under the new key, takes over and every
#     stream survives.
set -u
. "$(dirname "$0")/lib.bash"
LBDRILL=$REPO/build/lbdrill
DRILL_PID=
lab_start keyrot
OUT=$(mktemp -d /tmp/keyrot.XXXXXX)
cleanup() {
	local rc=$?
	[ -z "$DRILL_PID" ] || kill -TERM "$DRILL_PID" 2>/dev/null
	rm -rf "$OUT"
	"$LAB" down >/dev/null 2>&1 || true
	exit "$rc"
}
trap cleanup EXIT
KEY=$RUN/pair/sync.key
sync_counter() { lab ctl "$1" sync 2>/dev/null | awk -v n="$2" '$1 == n { print $2 }'; }
json() { "$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2" 2>/dev/null; }
both_switched() { [ "$(sync_counter lb1 sync_key_state)" = 2 ] && [ "$(sync_counter lb2 sync_key_state)" = 2 ]; }

expect_eq "lb1 is master" "$(lab role lb1)" master
expect_eq "no rotation under way at start" "$(sync_counter lb1 sync_key_state)/$(sync_counter lb2 sync_key_state)" 0/0
lab_exec client "$LBDRILL" stream --target 198.18.0.100:9000 --conns 60 --duration 16 \
	--json "$OUT/v4.json" >"$OUT/v4.out" 2>&1 &
DRILL_PID=$!
sleep 2

# A key file lbd would refuse: the reload says so, the key stays.
chmod 644 "$KEY"
answer=$(lab ctl lb2 reload 2>&1)
check "reload with a mode-0644 key: services reloaded, key refused ($(tail -n 1 <<<"$answer"))" \
	grep -q "error: sync key not changed: .*mode 0644" <<<"$answer"
chmod 600 "$KEY"
expect_eq "lb2 kept its key" "$(sync_counter lb2 sync_key_state)" 0

# The new key; the backup first.
bad1=$(sync_counter lb1 sync_bad_hmac)
rx2=$(sync_counter lb2 sync_data_received)
# lbd reads it as its own user (daemon.user, nobody in the lab), which owns it
(umask 077 && head -c 32 /dev/urandom >"$KEY.new") && chown nobody "$KEY.new" && mv -f "$KEY.new" "$KEY"
answer=$(lab ctl lb2 reload 2>&1)
check "lb2 reload starts a rotation ($(tail -n 1 <<<"$answer"))" grep -q '^sync key: new key from' <<<"$answer"
expect_eq "lb2: new key offered, old one still sent" "$(sync_counter lb2 sync_key_state)" 1
sleep 2
check "lb1 still accepts everything lb2 sends under the old key, but lb2's probes fail" \
	[ "$(sync_counter lb1 sync_bad_hmac)" -gt "$bad1" ]
check "lb1 logged the authentication failures" grep -q 'failed authentication' "$RUN/lb1.log"
check "lb2 keeps receiving lb1's stream ($(sync_counter lb2 sync_data_received) > $rx2 data datagrams)" \
	[ "$(sync_counter lb2 sync_data_received)" -gt "$rx2" ]
expect_eq "lb2 refused nothing from lb1" "$(sync_counter lb2 sync_bad_hmac)" 0

answer=$(lab ctl lb1 reload 2>&1)
check "lb1 reload starts its rotation" grep -q '^sync key: new key from' <<<"$answer"
check "both nodes send under the new key within 3 s" wait_until 3 both_switched
check "lb1 logged the switch" grep -q 'the peer has the new key' "$RUN/lb1.log"
b1=$(sync_counter lb1 sync_bad_hmac) b2=$(sync_counter lb2 sync_bad_hmac)
sleep 2
expect_eq "no authentication failure since (lb1, lb2)" \
	"$(sync_counter lb1 sync_bad_hmac) $(sync_counter lb2 sync_bad_hmac)" "$b1 $b2"

# lb2 got everything under the new key: it takes over without a loss.
check "lb1 killed" lab kill lb1
check "lb2 is master within 3 s" wait_until 3 eval '[ "$(lab role lb2)" = master ]'
wait_until 30 eval "! kill -0 $DRILL_PID 2>/dev/null"
wait "$DRILL_PID"
DRILL_PID=
sed 's/^/# /' "$OUT/v4.out" | tail -n 6
expect_eq "every stream connected" "$(json "$OUT/v4.json" connected)" 60
expect_eq "every stream survived the rotation and the failover" "$(json "$OUT/v4.json" survived)" 60
expect_eq "no corrupt byte" "$(json "$OUT/v4.json" corrupt)" 0
finish
