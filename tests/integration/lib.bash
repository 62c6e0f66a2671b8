# Shared helpers of the namespace integration tests. Source it from a test:
#   . "$(dirname "$0")/lib.bash"; lab_start NAME
# Results are TAP-style lines ("ok - ...", "not ok - ..."), counted by tests/run.
# Every test brings up its own lab with a per-run prefix and tears it down on
# exit (trap), whatever happened.

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
LAB="$REPO/deploy/lab"
PY=/usr/bin/python3		# Debian's python, where python3-scapy lives
FAILS=0

ok() { printf 'ok - %s\n' "$*"; }
not_ok() { printf 'not ok - %s\n' "$*"; FAILS=$((FAILS + 1)); }
note() { printf '# %s\n' "$*"; }

# check DESCRIPTION CMD...: one TAP line for whether CMD succeeds.
check() {
	local desc=$1; shift
	if "$@"; then ok "$desc"; else not_ok "$desc"; fi
}

# expect_eq DESCRIPTION GOT WANT
expect_eq() {
	if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1 (got '$2', want '$3')"; fi
}

lab() { "$LAB" "$@"; }
lab_exec() { "$LAB" exec "$@"; }
ctl() { "$LAB" ctl lb1 "$@"; }

# stat NAME: one counter of lb1's lbd. A counter lbd does not report (a
# typo, a renamed counter, lbd gone) is a failure, never a silent 0: it
# prints a "not ok" line and ends the test (stat runs in $(...), so it
# signals the test's own shell; its trap brings the lab down).
stat() {
	local v
	v=$(ctl stats | awk -v n="$1" '$1 == n && $2 ~ /^[0-9]+$/ { print $2; f = 1 }
				      END { exit !f }') && { echo "$v"; return 0; }
	printf 'not ok - lbd reports no counter %s\n' "$1" >&2
	kill -TERM "$TEST_PID"
	return 1
}
TEST_PID=$$

lab_cleanup() {
	local rc=$?
	"$LAB" down >/dev/null 2>&1 || true
	exit "$rc"
}

# lab_start NAME: a lab of our own, down again when the test exits.
lab_start() {
	export LAB_PREFIX="${1:0:10}$$"
	export LAB_PREFIX=${LAB_PREFIX:0:20}
	trap lab_cleanup EXIT
	trap 'exit 130' INT TERM
	if ! "$LAB" up >/tmp/lab-up-$LAB_PREFIX.log 2>&1; then
		not_ok "lab up ($LAB_PREFIX)"
		sed 's/^/# /' /tmp/lab-up-$LAB_PREFIX.log
		rm -f /tmp/lab-up-$LAB_PREFIX.log
		exit 1
	fi
	rm -f /tmp/lab-up-$LAB_PREFIX.log
	RUN=$("$LAB" env | awk -F= '$1 == "LAB_RUN_DIR" { print $2 }')
	[ -n "$RUN" ] || RUN=/tmp/lb-lab-$LAB_PREFIX
}

# reload_conf: lb1 reloads its file; a refusal prints why, with lbd's last
# log lines, and fails (a silent failure made a whole suite test the old
# configuration).
reload_conf() {
	local out
	out=$(ctl reload 2>&1) && return 0
	printf '# reload failed: %s\n' "$out"
	tail -n 20 "$RUN/lb1.log" 2>/dev/null | sed 's/^/# lb1.log: /'
	return 1
}

# set_scheduler NAME [PERSISTENCE]: every service of lb1 uses NAME.
set_scheduler() {
	sed -i -E "s/scheduler = \"[a-z]+\";/scheduler = \"$1\";/" "$RUN/lb1.conf"
	sed -i -E 's/ persistence = [0-9]+;//' "$RUN/lb1.conf"
	if [ -n "${2:-}" ]; then
		sed -i -E "s/(scheduler = \"[a-z]+\";)/\\1 persistence = $2;/" "$RUN/lb1.conf"
	fi
	check "lb1 reloads with scheduler $1${2:+, persistence $2}" reload_conf
}

# http_get URL [CURL ARGS...]: body of one request from the client.
http_get() { lab_exec client curl -s -m 5 "$@"; }

# finish: exit status from the TAP lines.
finish() { [ "$FAILS" -eq 0 ]; }

# wait_until SECONDS CMD...: polls CMD every 0.1 s until it succeeds.
wait_until() {
	local limit=$(( $(date +%s%N) + $1 * 1000000000 )); shift
	while [ "$(date +%s%N)" -lt "$limit" ]; do
		"$@" && return 0
		sleep 0.1
	done
	return 1
}
