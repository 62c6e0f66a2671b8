#!/usr/bin/env bash
# Reload: removing a backend from the configuration keeps its established
# connections (it drains), sends no new connection to it, and a reload with a
# broken file is refused with file:line while the running config stays.
set -u
. "$(dirname "$0")/lib.bash"
# One lbd on lb1, no keepalived: nothing here fails over, and a pair's VRRP
# could move the VIPs to lb2 on a loaded machine (short adverts) while this
# suite configures lb1.
export LAB_HA=0
lab_start reload

WANT=$(sha256sum "$RUN/blob" | cut -d' ' -f1)
out=$(mktemp)
lab_exec client sh -c "curl -s -m 60 --limit-rate 12M http://198.18.0.100/blob | sha256sum" >"$out" &
dl=$!
established() { ctl --json conns state established | jq -r '.conns[0].backend // empty'; }
wait_until 5 sh -c "[ -n \"\$('$LAB' ctl lb1 --json conns state established | jq -r '.conns[0] // empty')\" ]"
victim=$(established | sed -E 's/:80$//')
check "download running through $victim" [ -n "$victim" ]

# Take that backend out of the HTTP services and reload.
$PY - "$RUN/lb1.conf" "$victim" <<'PYEOF'
import re, sys
path, victim = sys.argv[1], sys.argv[2]
text = open(path).read()
text = re.sub(r'\{\s*address = "%s";\s*port = 80;[^}]*\},?\s*' % re.escape(victim), '', text)
open(path, 'w').write(text)
PYEOF
check "config no longer lists $victim:80" bash -c "! grep -q '\"$victim\"; port = 80' '$RUN/lb1.conf'"
answer=$(ctl reload 2>&1)
check "reload accepted ($answer)" grep -q '^ok' <<<"$answer"
state=$(ctl --json backends | jq -r --arg b "$victim:80" '.backends[] | select(.backend == $b) | .state')
expect_eq "$victim:80 is draining" "$state" draining

bodies=$(for i in $(seq 1 20); do http_get http://198.18.0.100/; echo; done)
victim_name=be$(( ${victim##*.} - 10 ))
expect_eq "20 new requests: none goes to the removed $victim_name" "$(grep -c "$victim_name" <<<"$bodies")" 0
expect_eq "20 new requests all answered" "$(grep -c '^be' <<<"$bodies")" 20

wait "$dl"
expect_eq "the download on the removed backend completed intact" "$(cut -d' ' -f1 "$out")" "$WANT"
rm -f "$out"

# A broken file is refused, with its line; the running config stays.
printf 'services = (\n  { vip = "198.18.0.100"; port = 80; wieght = 3; }\n);\n' >"$RUN/lb1.conf"
answer=$(ctl reload 2>&1); rc=$?
check "broken reload refused with a non-zero exit" [ "$rc" -ne 0 ]
check "the refusal names file:line ($answer)" grep -q "lb1.conf:2: unknown setting 'wieght' in a service" <<<"$answer"
check "the running services still answer" bash -c "[ -n \"\$('$LAB' exec client curl -s -m 5 http://198.18.0.100/)\" ]"
finish
