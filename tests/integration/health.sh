#!/usr/bin/env bash
# Health checks on one lbd. The port-80 service's backends get checks the
# test controls: be1 an HTTP check of a small server on :8081 the test starts
# and stops, be2 an HTTP check expecting 200 from a server that answers 503,
# be3 an exec check that outlives its timeout; on the drill port's service
# two HTTPS checks (self-signed) with a body match that holds and one that
# does not. Shows: a stopped HTTP server marks its backend down within
# fall x interval, no new connection goes to it, and it comes back after
# rise; 503 with expect 200 is down; an exec timeout is a failure; a body
# without the wanted text is a failure; `lbctl backends` shows health and
# the last error.
set -u
. "$(dirname "$0")/lib.bash"
# One lbd on lb1, no keepalived: nothing here fails over, and a pair's VRRP
# could move the VIPs to lb2 on a loaded machine (short adverts) while this
# suite configures lb1.
export LAB_HA=0
lab_start health

SVC=198.18.0.100:80
INTERVAL=500 FALL=2 RISE=2
PIDS=()
cleanup() {
	local rc=$?
	kill "${PIDS[@]}" 2>/dev/null
	wait "${PIDS[@]}" 2>/dev/null
	"$LAB" down >/dev/null 2>&1 || true
	exit "$rc"
}
trap cleanup EXIT

# serve NODE PORT STATUS [CERT]: a tiny HTTP server answering STATUS, HTTPS
# with CERT (a PEM with key and certificate); ours: we kill it.
serve() {
	# "$LAB" exec execs: $! is the server itself, not a subshell.
	"$LAB" exec "$1" "$PY" -c '
import http.server, sys
code = int(sys.argv[2])
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(code); self.end_headers(); self.wfile.write(b"health-" + str(code).encode())
    def log_message(self, *a): pass
srv = http.server.ThreadingHTTPServer(("0.0.0.0", int(sys.argv[1])), H)
if len(sys.argv) > 3:
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(sys.argv[3])
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
srv.serve_forever()
' "$2" "$3" ${4:+"$4"} &
	PIDS+=($!)
	LAST_PID=$!
}
serve be1 8081 200
BE1_PID=$LAST_PID
serve be2 8081 503
# HTTPS on be1 and be2 for the drill port's service: a self-signed certificate
# (the check does not verify it, as keepalived's SSL_GET does not).
openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=backend -days 1 \
	-keyout "$RUN/tls.pem" -out "$RUN/tls.crt" 2>/dev/null && cat "$RUN/tls.crt" >>"$RUN/tls.pem"
serve be1 8443 200 "$RUN/tls.pem"
serve be2 8443 200 "$RUN/tls.pem"
sleep 1	# the servers bind

# The checks, per backend, over a service-wide default.
$PY - "$RUN/lb1.conf" "$INTERVAL" "$FALL" "$RISE" <<'PYEOF'
import re, sys
path, interval, fall, rise = sys.argv[1:]
text = open(path).read()
svc = '{ vip = "198.18.0.100"; port = 80; scheduler = "rr";'
assert svc in text
text = text.replace(svc, svc + '\n    check = { type = "http"; port = 8081; path = "/"; interval = %s; '
                    'timeout = 400; fall = %s; rise = %s; expect = 200; };' % (interval, fall, rise), 1)
# be3 (the third backend of that service): an exec check that sleeps past its timeout.
text = text.replace('{ address = "198.18.1.13"; port = 80; weight = 1; }',
    '{ address = "198.18.1.13"; port = 80; weight = 1; '
    'check = { type = "exec"; command = "sleep 5"; timeout = 300; }; }', 1)
# The drill port's service: https checks, one body that matches, one that does not.
text = text.replace('{ address = "198.18.1.11"; port = 9000; weight = 1; }',
    '{ address = "198.18.1.11"; port = 9000; weight = 1; check = { type = "https"; port = 8443; '
    'body = "health-200"; interval = %s; timeout = 400; fall = %s; }; }' % (interval, fall), 1)
text = text.replace('{ address = "198.18.1.12"; port = 9000; weight = 1; }',
    '{ address = "198.18.1.12"; port = 9000; weight = 1; check = { type = "https"; port = 8443; '
    'body = "ready"; interval = %s; timeout = 400; fall = %s; }; }' % (interval, fall), 1)
open(path, 'w').write(text)
PYEOF
answer=$(ctl reload 2>&1)
check "reload with checks ($answer)" grep -q '^ok' <<<"$answer"

health() { ctl --json backends | jq -r --arg b "$1" '.backends[] | select(.service == "'$SVC'" and .backend == $b) | .'"${2:-health}"; }

check "be2 (503, expect 200) goes down" wait_until 10 sh -c "[ \"\$('$LAB' ctl lb1 --json backends | jq -r '.backends[] | select(.backend == \"198.18.1.12:80\" and .service == \"$SVC\") | .health')\" = down ]"
expect_eq "  its last error" "$(health 198.18.1.12:80 last_error)" "HTTP 503"
check "be3 (exec past its timeout) goes down" wait_until 10 sh -c "[ \"\$('$LAB' ctl lb1 --json backends | jq -r '.backends[] | select(.backend == \"198.18.1.13:80\" and .service == \"$SVC\") | .health')\" = down ]"
expect_eq "  its last error" "$(health 198.18.1.13:80 last_error)" "timeout after 300 ms"
expect_eq "be1 (200) stays up" "$(health 198.18.1.11:80)" up
drill() { ctl --json backends | jq -r --arg b "$1" '.backends[] | select(.service == "198.18.0.100:9000" and .backend == $b) | .'"$2"; }
check "https, body without 'ready': be2 of :9000 goes down" wait_until 10 eval '[ "$(drill 198.18.1.12:9000 health)" = down ]'
expect_eq "  its last error" "$(drill 198.18.1.12:9000 last_error)" "HTTP 200: body lacks 'ready'"
expect_eq "https, body with 'health-200': be1 of :9000 stays up, checked" \
	"$(drill 198.18.1.11:9000 health) $(drill 198.18.1.11:9000 check) $(drill 198.18.1.11:9000 check_failures)" "up https 0"
check "the table shows CHECK and LAST_ERROR" bash -c "'$LAB' ctl lb1 backends | grep '198.18.1.12:80' | grep -q 'http .*HTTP 503'"

bodies() { for _ in $(seq 1 "$1"); do http_get http://198.18.0.100/; echo; done; }
b=$(bodies 9)
expect_eq "9 requests all go to be1, the only healthy backend" "$(grep -c '^be1$' <<<"$b")" 9

# Stop be1's check server: down within fall x interval (plus a timeout and slack).
kill "$BE1_PID"; wait "$BE1_PID" 2>/dev/null
t0=$(date +%s%N)
check "be1 goes down when its HTTP server stops" wait_until 10 sh -c "[ \"\$('$LAB' ctl lb1 --json backends | jq -r '.backends[] | select(.backend == \"198.18.1.11:80\" and .service == \"$SVC\") | .health')\" = down ]"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
limit=$(( FALL * INTERVAL + 400 + 1500 ))
check "  within fall x interval: ${ms} ms (fall $FALL x $INTERVAL ms, limit $limit ms with a timeout and polling slack)" [ "$ms" -le "$limit" ]
expect_eq "  its last error" "$(health 198.18.1.11:80 last_error)" "connect: refused"
check "with every backend down a request finds none" bash -c "! '$LAB' exec client curl -s -m 2 http://198.18.0.100/ >/dev/null"
check "  counted as drop_no_backend" [ "$(stat drop_no_backend)" -gt 0 ]

serve be1 8081 200
t0=$(date +%s%N)
check "be1 comes back after rise when its server is back" wait_until 10 sh -c "[ \"\$('$LAB' ctl lb1 --json backends | jq -r '.backends[] | select(.backend == \"198.18.1.11:80\" and .service == \"$SVC\") | .health')\" = up ]"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
note "be1 up again after $ms ms (rise $RISE x $INTERVAL ms)"
expect_eq "requests answered again, by be1" "$(bodies 3 | grep -c '^be1$')" 3

# A bad check in the file is refused with its line; the running checks stay.
sed -i 's/type = "exec";/type = "icmp";/' "$RUN/lb1.conf"
answer=$(ctl reload 2>&1); rc=$?
check "a reload with an unknown check type fails (exit $rc)" [ "$rc" -eq 1 ]
check "  naming file:line ($answer)" grep -q "lb1.conf:[0-9]*: unknown check type 'icmp'" <<<"$answer"
expect_eq "  and be3's exec check still runs (down)" "$(health 198.18.1.13:80)" down
check "lbd logged the changes" grep -q "health: backend 198.18.1.11:80 of 198.18.0.100:80 is down: connect: refused" "$RUN/lb1.log"
finish
