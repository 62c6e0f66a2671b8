#!/usr/bin/env bash
# lbd's configuration errors and rule lifecycle: a broken config exits
# non-zero with file:line and installs nothing; a clean stop (SIGTERM)
# removes every rule lbd installed; --check validates without running.
set -u
. "$(dirname "$0")/lib.bash"
export LAB_LBD=0
# One lbd on lb1, no keepalived: nothing here fails over, and a pair's VRRP
# could move the VIPs to lb2 on a loaded machine (short adverts) while this
# suite configures lb1.
export LAB_HA=0
lab_start config

LBD=$REPO/build/lbd
rules() { lab_exec lb1 sh -c 'iptables-save; ip6tables-save' | grep -c 'LBD' ; }
conf=$RUN/test.conf

cat >"$conf" <<CONF
daemon: { control = "$RUN/t.sock"; workers = 2; };
services = (
  { vip = "198.18.0.100"; port = 80; scheduler = "rr";
    backends = ( { address = "198.18.1.11"; },
                 { address = "2001:db8:1::12"; } ); }
);
CONF
msg=$(lab_exec lb1 "$LBD" -c "$conf" 2>&1); rc=$?
check "mixed-family backend: exit code non-zero ($rc)" [ "$rc" -ne 0 ]
check "mixed-family backend: message has file:line ($msg)" grep -q "test.conf:5: backend and VIP must be of the same address family" <<<"$msg"
expect_eq "nothing installed after the refusal" "$(rules)" 0

printf 'daemon: { workers = ; }\nservices = ( );\n' >"$conf"
msg=$(lab_exec lb1 "$LBD" -c "$conf" 2>&1); rc=$?
check "syntax error: refused with file:line ($msg)" bash -c "[ $rc -ne 0 ] && grep -q 'test.conf:1: syntax error' <<<'$msg'"
expect_eq "nothing installed after the syntax error" "$(rules)" 0

msg=$(lab_exec lb1 "$LBD" -c "$RUN/missing.conf" 2>&1); rc=$?
check "missing file: refused and named ($msg)" bash -c "[ $rc -ne 0 ] && grep -q 'missing.conf' <<<'$msg'"

cat >"$conf" <<CONF
daemon: { control = "$RUN/t.sock"; workers = 2; };
services = ( { vip = "198.18.0.100"; port = 80; backends = ( { address = "198.18.1.11"; } ); },
             { vip = "2001:db8::100"; port = 80; backends = ( { address = "2001:db8:1::11"; } ); } );
CONF
check "--check accepts a valid file" lab_exec lb1 "$LBD" -c "$conf" --check
expect_eq "--check installs nothing" "$(rules)" 0

# ip netns exec execs lbd, so $! is lbd itself (deploy/lab exec would be a shell).
start_lbd() { ip netns exec "$LAB_PREFIX-lb1" "$LBD" -c "$conf" >>"$RUN/t.log" 2>&1 & pid=$!; }
start_lbd
wait_until 10 lab_exec lb1 "$REPO/build/lbctl" -s "$RUN/t.sock" stats >/dev/null 2>&1
check "lbd runs and answers on its control socket" lab_exec lb1 "$REPO/build/lbctl" -s "$RUN/t.sock" stats >/dev/null
check "lbd installed its chains for IPv4 and IPv6 ($(rules) lines)" [ "$(rules)" -ge 8 ]
check "HTTP through the VIP while it runs" bash -c "[ \"\$('$LAB' exec client curl -s -m 5 http://198.18.0.100/)\" = be1 ]"
kill -TERM "$pid"
wait_until 5 bash -c "! kill -0 $pid 2>/dev/null"
wait "$pid"; rc=$?
expect_eq "lbd exits 0 on SIGTERM" "$rc" 0
expect_eq "no LBD rule left after SIGTERM" "$(rules)" 0
# lbd runs as daemon.user after set-up and may not write the socket's
# directory, so the socket file can stay behind (docs/operations.md,
# privileges); nothing answers on it, and the next start replaces it.
check "nothing answers on the control socket after exit" \
	bash -c "! '$LAB' exec lb1 '$REPO/build/lbctl' -s '$RUN/t.sock' stats >/dev/null 2>&1"

# A crash (SIGKILL) leaves rules behind; the next start clears them first.
start_lbd
wait_until 10 lab_exec lb1 "$REPO/build/lbctl" -s "$RUN/t.sock" stats >/dev/null 2>&1
kill -KILL "$pid"; wait "$pid" 2>/dev/null
left=$(rules)
start_lbd
wait_until 10 lab_exec lb1 "$REPO/build/lbctl" -s "$RUN/t.sock" stats >/dev/null 2>&1
expect_eq "after a crash and restart the rules are installed once, not twice" "$(rules)" "$left"
check "HTTP through the VIP after the restart" bash -c "[ \"\$('$LAB' exec client curl -s -m 5 http://198.18.0.100/)\" = be1 ]"
kill -TERM "$pid"; wait "$pid"
expect_eq "no LBD rule left after the final stop" "$(rules)" 0
finish
