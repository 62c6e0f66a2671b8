#!/usr/bin/env bash
# The control plane on one lbd: `lbctl --json` of every command parses and
# carries a status; bad input (unknown command, over-long line, non-numeric
# weight, unknown backend or service) gets a clear error and a non-zero exit
# while traffic continues; the runtime API works live: drain keeps an
# established download and sends nothing new, undrain brings it back, a
# weight moves the share, remove and add take a backend out and back.
set -u
. "$(dirname "$0")/lib.bash"
# One lbd on lb1, no keepalived: nothing here fails over, and a pair's VRRP
# could move the VIPs to lb2 on a loaded machine (short adverts) while this
# suite configures lb1.
export LAB_HA=0
lab_start control

SVC=198.18.0.100:80
# bodies N: which backend answered each of N requests, one per line.
bodies() { for _ in $(seq 1 "$1"); do http_get http://198.18.0.100/; echo; done; }
count_of() { grep -c "^$1\$" <<<"$2"; }

# ---- every command answers JSON with a status ----
for c in stats conns backends role ready sync capture help "conns state established"; do
	# shellcheck disable=SC2086
	st=$(ctl --json $c | jq -r .status 2>&1)
	expect_eq "lbctl --json $c parses, status ok" "$st" ok
done
st=$(ctl --json weight $SVC 198.18.1.99 2 | jq -r '.status + ": " + .error' 2>&1)
expect_eq "lbctl --json of a failing command parses" "$st" \
	"error: no backend 198.18.1.99:80 in service $SVC"
check "lbctl --help" bash -c "'$REPO/build/lbctl' --help | grep -q '^usage: lbctl'"
check "lbctl --version" bash -c "'$REPO/build/lbctl' --version | grep -q '^lbctl '"
check "lbd --version" bash -c "'$REPO/build/lbd' --version | grep -q '^lbd '"
check "lbdrill --version" bash -c "'$REPO/build/lbdrill' --version | grep -q '^lbdrill '"
check "backends: a table with a header" bash -c "'$LAB' ctl lb1 backends | head -1 | grep -q '^SERVICE  *BACKEND  *WEIGHT  *STATE  *HEALTH'"

# ---- bad input ----
# refused DESC PATTERN ARGS...: lbctl ARGS exits 1 with an error matching PATTERN.
refused() {
	local desc=$1 pat=$2 out rc
	shift 2
	out=$(ctl "$@" 2>&1); rc=$?
	if [ "$rc" -eq 1 ] && grep -q -- "$pat" <<<"$out"; then
		ok "$desc ($(head -1 <<<"$out"))"
	else
		not_ok "$desc (exit $rc: $(tr '\n' ' ' <<<"$out" | head -c 300))"
	fi
}
refused "unknown command" "^error: unknown command 'frobnicate'" frobnicate
refused "over-long line" "^error: command line longer than 1023 bytes" conns "$(printf 'x%.0s' $(seq 1 1500))"
refused "non-numeric weight" "^error: weight 'heavy' is not a number" weight $SVC 198.18.1.11 heavy
refused "unknown backend" "^error: no backend 198.18.1.99:80 in service $SVC" drain $SVC 198.18.1.99
refused "unknown service" "^error: no service 198.18.0.100:81" disable 198.18.0.100:81
refused "bad service text" "^error: service 'nonsense' is not VIP:PORT" enable nonsense
refused "bad conns filter" "^error: conns: unknown state 'sleepy'" conns state sleepy
expect_eq "traffic continues after the bad input" "$(bodies 6 | grep -c '^be')" 6

# ---- drain keeps the established, sends nothing new ----
WANT=$(sha256sum "$RUN/blob" | cut -d' ' -f1)
out=$(mktemp)
lab_exec client sh -c "curl -s -m 60 --limit-rate 12M http://198.18.0.100/blob | sha256sum" >"$out" &
dl=$!
est() { ctl --json conns service $SVC state established | jq -r '.conns[0].backend // empty'; }
wait_until 5 sh -c "[ -n \"\$('$LAB' ctl lb1 --json conns service $SVC state established | jq -r '.conns[0] // empty')\" ]"
victim=$(est | sed 's/:80$//')
check "a download runs through $victim" [ -n "$victim" ]
answer=$(ctl drain $SVC "$victim" 2>&1)
check "drain $victim ($answer)" grep -q "^ok: drain $SVC $victim:80" <<<"$answer"
state=$(ctl --json backends | jq -r --arg b "$victim:80" '.backends[] | select(.backend == $b) | .state')
expect_eq "$victim shows drained" "$state" drained
# Replies cross NFQUEUE (pkts_reply) or, by default, the kernel fast path
# (fast_pkts, both directions, fed back by the loop thread each tick).
rate=$(ctl --rate stats | awk '$1 == "pkts_reply/s" || $1 == "fast_pkts/s" { n += $2 }
	END { print int(n) }')
check "lbctl --rate stats while the download runs: ${rate:-?} pkts_reply/s + fast_pkts/s" \
	[ "${rate:-0}" -gt 0 ]
name=be$(( ${victim##*.} - 10 ))
b=$(bodies 20)
expect_eq "20 new requests while drained: none to $name" "$(count_of "$name" "$b")" 0
expect_eq "  and all 20 answered" "$(grep -c '^be' <<<"$b")" 20
wait "$dl"
expect_eq "the download on the drained backend completed intact" "$(cut -d' ' -f1 "$out")" "$WANT"
rm -f "$out"
ctl undrain $SVC "$victim" >/dev/null
b=$(bodies 12)
check "undrained: $name gets requests again ($(count_of "$name" "$b") of 12)" [ "$(count_of "$name" "$b")" -gt 0 ]

# ---- weight moves the share (wrr: 3:1:1) ----
set_scheduler wrr
ctl weight $SVC 198.18.1.11 3 >/dev/null
b=$(bodies 50)
n1=$(count_of be1 "$b"); n2=$(count_of be2 "$b"); n3=$(count_of be3 "$b")
check "weight 3 on be1: 50 requests split $n1/$n2/$n3 (want about 30/10/10)" \
	bash -c "[ $n1 -ge 28 ] && [ $n1 -le 32 ] && [ $n2 -ge 8 ] && [ $n3 -ge 8 ]"
w=$(ctl --json backends | jq -r '.backends[] | select(.backend == "198.18.1.11:80") | .weight')
expect_eq "backends shows weight 3" "$w" 3

# ---- remove and add, live ----
answer=$(ctl remove $SVC 198.18.1.13 2>&1)
check "remove be3 ($answer)" grep -q '^ok: remove' <<<"$answer"
b=$(bodies 15)
expect_eq "removed: 15 requests, none to be3" "$(count_of be3 "$b")" 0
answer=$(ctl add $SVC 198.18.1.13 weight=1 2>&1)
check "add be3 back ($answer)" grep -q '^ok: add' <<<"$answer"
b=$(bodies 15)
check "added: be3 answers again ($(count_of be3 "$b") of 15)" [ "$(count_of be3 "$b")" -gt 0 ]
refused "adding it twice" "^error: backend 198.18.1.13:80 is already in service $SVC" add $SVC 198.18.1.13

# ---- disable, enable ----
ctl disable $SVC >/dev/null
check "disabled: a request fails" bash -c "! '$LAB' exec client curl -s -m 2 http://198.18.0.100/ >/dev/null"
check "  counted as drop_service_disabled ($(stat drop_service_disabled))" [ "$(stat drop_service_disabled)" -gt 0 ]
ctl enable $SVC >/dev/null
expect_eq "enabled: requests answered again" "$(bodies 3 | grep -c '^be')" 3

check "lbctl --json --rate=1 stats parses" bash -c "'$LAB' ctl lb1 --json --rate=1 stats | jq -e '.status == \"ok\" and .interval_s == 1 and (.pkts_orig | type) == \"number\"' >/dev/null"
refused2=$(ctl --rate conns 2>&1); rc=$?
check "--rate refuses a table command (exit $rc: $refused2)" [ "$rc" -eq 2 ]

# ---- a reload puts the file's configuration back ----
reload_conf
w=$(ctl --json backends | jq -r '.backends[] | select(.backend == "198.18.1.11:80") | .weight')
expect_eq "after a reload be1's weight is the file's again" "$w" 1
finish
