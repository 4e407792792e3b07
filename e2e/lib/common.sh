# The one preamble of the machine-level scripts in e2e/ and bench/. Source it first:
#   source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"      (from e2e/)
#   source "$(dirname "${BASH_SOURCE[0]}")/../e2e/lib/common.sh" (from bench/)
#
# It sets `set -euo pipefail`, cds to the repository, and defines:
#   repo, bin (target/release), BUILD (default <repo>/build)
#   step TEXT           prints "-- TEXT"
#   fail TEXT           prints "FAIL: TEXT" (and runs `on_fail` if the script defines it), exits 1
#   expect RE FILE      FILE must contain the extended regex RE, else fail showing FILE
#   at_exit CMD         runs CMD when the script exits (last registered runs first)
#   free_port           prints a TCP port on 127.0.0.1 that nobody listens on (the kernel picks it)
#   need_root           fails unless root: the caller cannot do its job otherwise, and a
#                       skipped end-to-end test must not pass as a green one
#   need_bins NAME...   builds the release binaries if one of them is missing
#   work_dir NAME       sets `work` to a new temp dir, removed at exit if the script succeeded, else kept
# It stops only what the script started: at_exit commands kill by PID.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo"
bin=$repo/target/release
BUILD=${BUILD:-$repo/build}

step() { echo "-- $*"; }

fail() {
	echo "FAIL: $*" >&2
	if declare -F on_fail >/dev/null; then on_fail >&2 || true; fi
	exit 1
}

expect() {
	grep -qE -- "$1" "$2" || {
		echo "---- $2 ----" >&2
		cat "$2" >&2
		fail "expected /$1/ in $2"
	}
}

_at_exit_cmds=()
at_exit() { _at_exit_cmds+=("$*"); }
_run_at_exit() {
	local rc=$? i
	for ((i = ${#_at_exit_cmds[@]} - 1; i >= 0; i--)); do
		eval "${_at_exit_cmds[i]}" || true
	done
	return $rc
}
trap _run_at_exit EXIT

# stop_pids PID...: stops processes this script started (empty PIDs are skipped) and
# waits for each, so nothing it started outlives it.
stop_pids() {
	local pid
	for pid in "$@"; do
		[ -n "$pid" ] || continue
		kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	done
	return 0
}

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

need_root() {
	[ "$(id -u)" = 0 ] || fail "$(basename "$0") needs root (mounts, loop devices, chroot): run it as root, as make test does"
}

need_bins() {
	local b
	for b in "$@"; do
		[ -x "$bin/$b" ] || { step "building (target/release/$b missing)"; cargo build --release --workspace; return; }
	done
}

work_dir() {
	work=$(mktemp -d "/tmp/circular-$1.XXXXXX")
	at_exit "if [ \$rc -eq 0 ]; then rm -rf '$work'; else echo 'kept $work for inspection' >&2; fi"
}
