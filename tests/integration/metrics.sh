#!/usr/bin/env bash
# The Prometheus endpoint and the control socket's group, on an lbd of the
# test's own in lb1: off by default; with `metrics` set, GET /metrics from
# the client answers, its counters move with traffic, per-backend health
# and the kernel fast path's state and counters show; a bad `metrics` value
# is refused with file:line. With
# control_group the socket is 0660 for that group, made so without a wider
# moment, and a member that is not root may read but not change anything.
set -u
. "$(dirname "$0")/lib.bash"
export LAB_LBD=0
# One lbd on lb1, no keepalived: nothing here fails over, and a pair's VRRP
# could move the VIPs to lb2 on a loaded machine (short adverts) while this
# suite configures lb1.
export LAB_HA=0
lab_start metrics

LBD=$REPO/build/lbd
LBCTL=$REPO/build/lbctl
conf=$RUN/m.conf
URL=http://198.18.0.2:9100/metrics
pid=
stop_lbd() { [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; pid=; }
cleanup() { local rc=$?; stop_lbd; "$LAB" down >/dev/null 2>&1 || true; exit "$rc"; }
trap cleanup EXIT

write_conf() {
	cat >"$conf" <<CONF
daemon: { control = "$RUN/m.sock"; $1 };
services = ( { vip = "198.18.0.100"; port = 80; scheduler = "rr";
               check = { type = "tcp"; interval = 500; timeout = 400; };
               backends = ( { address = "198.18.1.11"; }, { address = "198.18.1.12"; } ); } );
CONF
}
start_lbd() {
	ip netns exec "$LAB_PREFIX-lb1" "$LBD" -c "$conf" >>"$RUN/m.log" 2>&1 &
	pid=$!
	wait_until 10 lab_exec lb1 "$LBCTL" -s "$RUN/m.sock" stats >/dev/null 2>&1
}
metric() { lab_exec client curl -s -m 3 "$URL" | awk -v n="$1" '$1 == n { print $2 }'; }

write_conf ""
start_lbd
check "metrics are off by default" bash -c "! '$LAB' exec client curl -s -m 2 -o /dev/null $URL"
stop_lbd

write_conf 'metrics = "198.18.0.2:91000";'
msg=$(lab_exec lb1 "$LBD" -c "$conf" --check 2>&1); rc=$?
check "a bad metrics address is refused (exit $rc)" [ "$rc" -ne 0 ]
check "  with file:line ($msg)" grep -q "m.conf:1: 'metrics' must be ADDRESS:PORT" <<<"$msg"

write_conf 'metrics = "198.18.0.2:9100"; control_group = "nogroup"; fast_path = true;'
start_lbd
body=$(lab_exec client curl -s -m 3 "$URL")
check "GET /metrics answers from the client" grep -q '^# TYPE lb_packets_total counter' <<<"$body"
check "  per-backend health (tcp check)" grep -q 'lb_backend_up{service="198.18.0.100:80",backend="198.18.1.11:80"} 1' <<<"$body"
check "  connections by state" grep -q '^lb_connections{state="established"} ' <<<"$body"
check "  drops by reason" grep -q '^lb_drops_total{reason="no_conn"} ' <<<"$body"
check "  the role" grep -q '^lb_role{role="master"} 1' <<<"$body"
check "  the kernel fast path's state" grep -q '^lb_fast_path{state="on"} 1' <<<"$body"
check "  and its counters" grep -q '^lb_fp_pass_no_entry [0-9]' <<<"$body"
before=$(metric 'lb_packets_total{direction="in"}')
created=$(metric 'lb_events_total{event="conns_created"}')
for _ in 1 2 3 4 5; do http_get http://198.18.0.100/ >/dev/null; done
after=$(metric 'lb_packets_total{direction="in"}')
created2=$(metric 'lb_events_total{event="conns_created"}')
check "packets counter moves with traffic ($before -> $after)" [ "${after:-0}" -gt "${before:-0}" ]
expect_eq "conns_created moved by the 5 requests" "$(( ${created2:-0} - ${created:-0} ))" 5
code=$(lab_exec client curl -s -m 3 -o /dev/null -w '%{http_code}' http://198.18.0.2:9100/other)
expect_eq "other paths: 404" "$code" 404

# control_group: 0660, group nogroup; a member (uid nobody) reads, cannot change.
mode=$(command stat -c '%a %G' "$RUN/m.sock")
expect_eq "the control socket is 0660 for control_group" "$mode" "660 nogroup"
chmod o+x "$RUN" 2>/dev/null
as_nobody() { lab_exec lb1 setpriv --reuid=nobody --regid=nogroup --clear-groups "$LBCTL" -s "$RUN/m.sock" "$@"; }
check "a group member reads stats" bash -c "$(declare -f as_nobody lab_exec); LAB='$LAB' LBCTL='$LBCTL' RUN='$RUN'; as_nobody stats >/dev/null"
out=$(as_nobody weight 198.18.0.100:80 198.18.1.11 5 2>&1); rc=$?
expect_eq "  but may not change the node ($out)" "$rc" 1
check "  the error says why" grep -q 'root only' <<<"$out"
w=$(lab_exec lb1 "$LBCTL" -s "$RUN/m.sock" --json backends | jq -r '.backends[0].weight')
expect_eq "  and the weight is unchanged" "$w" 1
finish
