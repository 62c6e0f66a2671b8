#!/usr/bin/env bash
# Capture: `lbctl capture` on a single lbd records what it receives (before
# NAT: requests to the VIP, replies from the backends) into PREFIX.in.pcap
# and what it forwards (after NAT) into PREFIX.out.pcap, in files tcpdump
# reads; a GSO download is recorded whole; a max_packets capture stops by
# itself and says why; a second start, a missing directory and a relative
# PREFIX are refused with a clear error.
set -u
. "$(dirname "$0")/lib.bash"
export LAB_HA=0		# one lbd on lb1, no keepalived: the capture is on lb1
lab_start capture

VIP4=198.18.0.100
VIP6=2001:db8::100

# status FIELD: one line of `capture` status.
status() { ctl capture | awk -v n="$1" '$1 == n { print $2; f = 1 } END { if (!f) print "" }'; }
# count FILE FILTER: packets of FILE that match the tcpdump FILTER.
count() { tcpdump -nr "$1" "${@:2}" 2>/dev/null | wc -l; }
# refused DESC PATTERN ARGS...: `lbctl ARGS` must fail, its answer matching PATTERN.
refused() {
	local desc=$1 pat=$2 out rc
	shift 2
	out=$(ctl "$@" 2>&1); rc=$?
	if [ "$rc" -ne 0 ] && grep -q -- "$pat" <<<"$out"; then
		ok "$desc ($(head -1 <<<"$out"))"
	else
		not_ok "$desc (exit $rc: $(tr '\n' ' ' <<<"$out"))"
	fi
}

expect_eq "status before any capture" "$(status state)" idle

answer=$(ctl capture start "$RUN/cap" 2>&1)
check "capture start ($answer)" \
	grep -q "^ok: capturing to $RUN/cap.in.pcap and $RUN/cap.out.pcap" <<<"$answer"
expect_eq "status: running" "$(status state)" running

# A second start while running is refused, and changes nothing.
refused "a second start fails" '^error: .*already running' capture start "$RUN/other"
check "  and creates no file" [ ! -e "$RUN/other.in.pcap" ]

# The role command still takes its argument after the dispatch change.
answer=$(ctl role master 2>&1)
check "role master still parses ($answer)" grep -q '^ok: role master' <<<"$answer"

bodies4=$(for i in 1 2 3 4 5 6; do http_get "http://$VIP4/"; echo; done)
bodies6=$(for i in 1 2 3 4 5 6; do http_get "http://[$VIP6]/"; echo; done)
expect_eq "6 HTTP requests over IPv4 answered" "$(grep -c '^be' <<<"$bodies4")" 6
expect_eq "6 HTTP requests over IPv6 answered" "$(grep -c '^be' <<<"$bodies6")" 6
size=$(lab_exec client sh -c "curl -s -m 20 -r 0-1048575 http://$VIP4/blob | wc -c")
expect_eq "a 1 MiB download" "$size" 1048576

running_in=$(status in_packets)
check "status counts while running (in_packets $running_in)" [ "${running_in:-0}" -gt 0 ]
check "stats show the running capture" bash -c "'$LAB' ctl lb1 stats | grep -qx 'capture_running 1'"

answer=$(ctl capture stop 2>&1)
check "capture stop ($(head -1 <<<"$answer"))" grep -q '^ok: capture stopped' <<<"$answer"
expect_eq "status: stopped" "$(status state)" stopped
expect_eq "status: stopped by the operator" "$(status reason)" stopped
refused "stop when none runs fails" '^error: no capture is running' capture stop

IN=$RUN/cap.in.pcap
OUT=$RUN/cap.out.pcap
check "tcpdump reads the in-file" tcpdump -nr "$IN" -c 1 >/dev/null 2>&1
check "tcpdump reads the out-file" tcpdump -nr "$OUT" -c 1 >/dev/null 2>&1
expect_eq "the in-file is 0600" "$(command stat -c %a "$IN")" 600
expect_eq "the out-file is 0600" "$(command stat -c %a "$OUT")" 600
check "the files are raw IP" \
	bash -c "tcpdump -nr '$IN' -c 1 2>&1 >/dev/null | grep -q 'link-type RAW'"

# Before NAT: requests to the VIPs, replies from the backends.
n_in=$(count "$IN")
n_out=$(count "$OUT")
note "in-file $n_in packets, out-file $n_out packets"
in_req4=$(count "$IN" dst host $VIP4 and tcp dst port 80)
in_rep4=$(count "$IN" src net 198.18.1.0/24 and tcp src port 80)
in_req6=$(count "$IN" dst host $VIP6 and tcp dst port 80)
in_rep6=$(count "$IN" src net 2001:db8:1::/64 and tcp src port 80)
check "in-file: IPv4 client -> VIP ($in_req4)" [ "$in_req4" -gt 0 ]
check "in-file: IPv4 backend -> client ($in_rep4)" [ "$in_rep4" -gt 0 ]
check "in-file: IPv6 client -> VIP ($in_req6)" [ "$in_req6" -gt 0 ]
check "in-file: IPv6 backend -> client ($in_rep6)" [ "$in_rep6" -gt 0 ]
expect_eq "in-file: every packet is one of those" \
	"$((in_req4 + in_rep4 + in_req6 + in_rep6))" "$n_in"

# After NAT: requests to the backends, replies from the VIPs, nothing else.
out_req4=$(count "$OUT" dst net 198.18.1.0/24 and tcp dst port 80)
out_rep4=$(count "$OUT" src host $VIP4 and tcp src port 80)
out_req6=$(count "$OUT" dst net 2001:db8:1::/64 and tcp dst port 80)
out_rep6=$(count "$OUT" src host $VIP6 and tcp src port 80)
check "out-file: IPv4 client -> backend ($out_req4)" [ "$out_req4" -gt 0 ]
check "out-file: IPv4 VIP -> client ($out_rep4)" [ "$out_rep4" -gt 0 ]
check "out-file: IPv6 client -> backend ($out_req6)" [ "$out_req6" -gt 0 ]
check "out-file: IPv6 VIP -> client ($out_rep6)" [ "$out_rep6" -gt 0 ]
expect_eq "out-file: every packet is NATed" \
	"$((out_req4 + out_rep4 + out_req6 + out_rep6))" "$n_out"
expect_eq "out-file: nothing still addressed to a VIP" \
	"$(count "$OUT" dst host $VIP4 or dst host $VIP6)" 0
check "in >= out ($n_in >= $n_out), out > 0" bash -c "[ $n_out -gt 0 ] && [ $n_in -ge $n_out ]"
expect_eq "status in_packets matches the in-file" "$(status in_packets)" "$n_in"
expect_eq "status out_packets matches the out-file" "$(status out_packets)" "$n_out"
expect_eq "status in_bytes is the in-file's size" "$(status in_bytes)" "$(command stat -c %s "$IN")"
expect_eq "nothing dropped" "$(status dropped)" 0
expect_eq "nothing truncated (snaplen 65535)" "$(status truncated)" 0

# The download came as GSO super-segments, recorded whole.
biggest=$(tcpdump -nvr "$IN" src net 198.18.1.0/24 2>/dev/null |
	grep -o ', length [0-9]*)' | grep -o '[0-9]*' | sort -n | tail -1)
check "a GSO segment recorded whole (largest IP packet ${biggest:-none} > 1500)" \
	[ "${biggest:-0}" -gt 1500 ]
# Timestamps are wall-clock time.
first=$(tcpdump -ttnr "$IN" -c 1 2>/dev/null | cut -d. -f1)
check "timestamps are CLOCK_REALTIME (first $first, now $(date +%s))" \
	[ $(( $(date +%s) - ${first:-0} )) -lt 600 ]

stats=$(ctl stats)
check "stats has capture_in_packets $n_in" grep -qx "capture_in_packets $n_in" <<<"$stats"
check "stats has capture_out_packets $n_out" grep -qx "capture_out_packets $n_out" <<<"$stats"
check "stats: not running" grep -qx 'capture_running 0' <<<"$stats"

# max_packets: the capture stops by itself at the limit and says why. Its
# in-file exists already (an old capture: lbd's user owns it),
# world-readable: it is emptied and made 0600.
echo junk >"$RUN/ten.in.pcap"
chown nobody "$RUN/ten.in.pcap"
chmod 644 "$RUN/ten.in.pcap"
answer=$(ctl capture start "$RUN/ten" max_packets=10 2>&1)
check "capture start max_packets=10 ($answer)" grep -q '^ok: .*max_packets 10' <<<"$answer"
for i in 1 2 3; do http_get "http://$VIP4/" >/dev/null; done
check "it stops by itself" wait_until 5 sh -c "'$LAB' ctl lb1 capture | grep -qx 'state stopped'"
expect_eq "  because of max_packets" "$(status reason)" max_packets
check "  and says so in words" \
	grep -qx 'detail the in-file reached max_packets 10' <<<"$(ctl capture)"
expect_eq "  at 10 packets" "$(status in_packets)" 10
expect_eq "  the in-file has 10" "$(count "$RUN/ten.in.pcap")" 10
check "  the out-file has at most 10" [ "$(count "$RUN/ten.out.pcap")" -le 10 ]
expect_eq "  the old in-file was replaced, 0600" "$(command stat -c %a "$RUN/ten.in.pcap")" 600
check "  and lbd logged it" \
	grep -q 'capture stopped (max_packets: the in-file reached max_packets 10)' \
	"$RUN/lb1.log"

# Bad prefixes: a missing directory, a relative path, a bad option.
refused "a missing directory fails" 'directory /nonexistent-lbd-dir does not exist' \
	capture start /nonexistent-lbd-dir/cap
refused "a PREFIX under a file fails" "$RUN/lb1.conf is not a directory" \
	capture start "$RUN/lb1.conf/cap"
ln -s /etc/hostname "$RUN/sym.out.pcap"
refused "a symlink in the way fails" "sym.out.pcap: it is a symbolic link" capture start "$RUN/sym"
check "  and /etc/hostname is untouched" [ -s /etc/hostname ]
check "  and leaves no in-file behind" [ ! -e "$RUN/sym.in.pcap" ]
refused "a relative PREFIX fails" 'must be an absolute path' capture start cap
refused "snaplen=0 fails" "snaplen '0'" capture start "$RUN/x" snaplen=0
refused "an unknown option fails" "unknown option 'count'" capture start "$RUN/x" count=3
refused "two PREFIXes fail" "unexpected argument" capture start "$RUN/x" "$RUN/y"
refused "an unknown subcommand fails" "unknown capture command 'pause'" capture pause
expect_eq "no capture runs after the refusals" "$(status state)" stopped

# A capture running when lbd exits is flushed and closed.
ctl capture start "$RUN/last" >/dev/null
http_get "http://$VIP4/" >/dev/null
want=$(status in_packets)
pid=$(lab pid lb1 lbd)
kill -TERM "$pid"
check "lbd exits on SIGTERM" wait_until 10 bash -c "! kill -0 $pid 2>/dev/null"
expect_eq "a capture open at lbd's exit is complete ($want packets)" \
	"$(count "$RUN/last.in.pcap")" "$want"
check "  and lbd logged the shutdown" \
	grep -q 'capture stopped (shutdown: lbd exited)' "$RUN/lb1.log"
finish
