#!/usr/bin/env bash
# The layout's rules, checked with the compiler and the linker rather than by
# reading names (docs/architecture.md, "Layout"):
#   - every library links alone against only the libraries below it, so a
#     dependency that points back up (the engine calling the daemon, sync
#     calling drill) fails to link;
#   - the headers a file really includes (cc -MM) stay within include/ and
#     its own folder: no folder reaches into another one's private headers,
#     and sync/ never sees lb_engine.h;
#   - the engine's live objects are opaque outside lb/.
# Prints TAP-style "ok"/"not ok" lines; needs a built tree (BUILD, default
# build).
set -u
cd "$(dirname "$0")/.."
B=${BUILD:-build}
PKGS="libnetfilter_queue libmnl libconfig libprotobuf-c libsodium libpcap jansson libcurl libmicrohttpd libbpf"
CFLAGS="-std=gnu11 -D_GNU_SOURCE -Iinclude -I$B/gen -I$B/gen/fastpath $(pkg-config --cflags $PKGS)"
LIBS="$(pkg-config --libs $PKGS) -pthread"
fails=0

check() {	# check NAME CMD...: ok when CMD succeeds
	local name=$1; shift
	if out=$("$@" 2>&1); then
		echo "ok - $name"
	else
		echo "not ok - $name"
		printf '%s\n' "$out" | head -n 10 | sed 's/^/#   /'
		fails=$((fails + 1))
	fi
}

# links LIB DEPS...: every object of LIB, with only DEPS to resolve against.
links() {
	local lib=$1; shift
	local deps=()
	for d in "$@"; do deps+=("$B/lib$d.a"); done
	echo 'int main(void) { return 0; }' |
		cc -x c - -x none -o /dev/null -Wl,--whole-archive "$B/lib$lib.a" -Wl,--no-whole-archive \
			"${deps[@]}" $LIBS
}
check "liblb.a links alone (the engine depends on nothing of ours)" links lb
check "libcommon.a links alone" links common
check "libsync.a links with liblb and libcommon only" links sync lb common
check "libconf.a links with liblb and libcommon only" links conf lb common
check "libfastpath.a links alone (libbpf only; the engine's types, not its code)" \
	links fastpath
check "libdrill.a links with libconf, libsync, liblb and libcommon only" \
	links drill conf sync lb common
check "libagent.a (health checks) links with libcommon only" links agent common

# headers_of FILE: the project headers FILE includes, directly or not.
headers_of() {
	cc $CFLAGS -MM "$1" | tr ' \\' '\n\n' | grep -E '\.h$' | grep -vE '^/' || true
}

# private_ok DIR FILE...: every header they include is public or DIR's own.
private_ok() {
	local dir=$1 bad=""; shift
	for f in "$@"; do
		while read -r h; do
			case $h in
			include/*|"$B"/gen/*|"$dir"/*) ;;
			*) bad+="$f includes $h"$'\n' ;;
			esac
		done < <(headers_of "$f")
	done
	[ -z "$bad" ] || { printf '%s' "$bad"; return 1; }
}
for dir in common lb sync conf drill lbd agent; do
	check "$dir/ includes only public headers and its own" private_ok "$dir" "$dir"/*.c
done
# The loader (the BPF program is compiled for another target, by clang).
check "fastpath/ includes only public headers and its own" private_ok fastpath \
	$(ls fastpath/*.c | grep -v '\.bpf\.c$')

no_engine_in_sync() {
	local bad=""
	for f in sync/*.c include/sync_*.h; do
		headers_of "$f" | grep -q 'include/lb_engine.h' && bad+="$f "
	done
	[ -z "$bad" ] || { echo "lb_engine.h reached from: $bad"; return 1; }
}
check "nothing in sync/ includes lb_engine.h, even indirectly" no_engine_in_sync

opaque() {
	! grep -nE 'struct lb_(conn|backend|table|engine) \{' include/*.h
}
check "struct lb_conn, lb_backend, lb_table, lb_engine are defined only in lb/" opaque
check "lb/ holds no daemon file" bash -c '! ls lb/lbd_* 2>/dev/null | grep .'

# Every shell script the repository ships parses: a script that only runs
# in `make demo` or a bench is not otherwise read by `make test`.
shell_scripts_parse() {
	local f bad="" n=0
	while IFS= read -r f; do
		[ -f "$f" ] || continue
		case $f in
		*.sh|*.bash) ;;
		*) LC_ALL=C sed -n '1{/^#!.*\(bash\|\/sh\)/p;q;}' "$f" | grep -q . || continue ;;
		esac
		n=$((n + 1))
		bash -n "$f" 2>/dev/null || bad+="$f "
	done < <(git ls-files 2>/dev/null)
	[ "$n" -ge 10 ] || { echo "only $n shell scripts found (git ls-files)"; return 1; }
	[ -z "$bad" ] || { echo "syntax errors in: $bad"; return 1; }
}
check "every shell script parses (bash -n)" shell_scripts_parse

[ "$fails" -eq 0 ]
