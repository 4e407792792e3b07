#!/bin/bash
# Cold-boot benchmark (issue 6): time from starting the VM to the login prompt on
# the serial console, with an empty cache, over a shaped link (netshape between the
# client and nginx on loopback), for:
#   prefetch    Circular: blockfs with the snapshot's boot profile
#   no-prefetch Circular: blockfs --no-prefetch (demand reads and readahead only)
#   qemu-curl   QEMU's curl block driver reading the raw image over HTTP
#   download    curl the whole raw image first, then boot it from local disk
#   local       the raw image on local disk (the limit)
# and a replay of the boot's recorded reads (one reader, in order) through each
# storage path, which compares storage without the CPU cost of TCG.
#
# Shapes: 50 ms RTT / 50 Mbit/s and 10 ms / 200 Mbit/s (BENCH_QUICK=1: the first).
# The image: $BENCH_IMAGE (with $BENCH_PROMPT, default "login:"), else
# build/bench-coldboot/debian.img if present (make it with
# `image-build os --suite bookworm --out build/bench-coldboot/debian.img`), else the
# tiny test guest (e2e/lib/tiny-guest.sh), which only shows the method works.
# Every boot is the VM a person's boot runs: the command line comes from the VM
# launcher (circular-vm), printed by `circular qemu-command`, with TCG, $BENCH_MEM MiB,
# $BENCH_SMP vCPUs and no screen (the serial console is QEMU's standard output, kept
# in a file); only the overlay's backing changes between methods.
# Results: a table on stdout and in build/bench-coldboot/results.txt.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
cd "$repo"
source e2e/lib/nginx.sh
bin=$repo/target/release
work=$repo/build/bench-coldboot
mkdir -p "$work"
NGINX_PORT=18950
PROXY_PORT=18951
SMP=${BENCH_SMP:-1}
MEM=${BENCH_MEM:-1024}
BOOT_TIMEOUT=${BENCH_BOOT_TIMEOUT:-900}
NGINX_RUN=$work/nginx
BLOCKFS_PID= PROXY_PID= QEMU_PID=
cleanup() {
	[ -n "$QEMU_PID" ] && kill "$QEMU_PID" 2>/dev/null && wait "$QEMU_PID" 2>/dev/null
	[ -n "$BLOCKFS_PID" ] && kill "$BLOCKFS_PID" 2>/dev/null && wait "$BLOCKFS_PID" 2>/dev/null
	[ -n "$PROXY_PID" ] && kill "$PROXY_PID" 2>/dev/null && wait "$PROXY_PID" 2>/dev/null
	nginx_stop
}
trap cleanup EXIT
now() { date +%s.%N; }
log() { echo "coldboot: $*" >&2; }

# --- the image --------------------------------------------------------------
if [ -n "${BENCH_IMAGE:-}" ]; then
	image=$BENCH_IMAGE prompt=${BENCH_PROMPT:-login:} kind=given
elif [ -f "$work/debian.img" ]; then
	image=$work/debian.img prompt=login: kind=debian
else
	source e2e/lib/tiny-guest.sh
	tiny_guest_build
	image=$TINY_GUEST_IMG prompt=$TINY_GUEST_MARKER kind=tiny
	log "WARNING: no Debian image ($work/debian.img); benchmarking the tiny test guest"
fi
image_size=$(stat -c %s "$image")
log "image $image ($kind, $((image_size >> 20)) MiB), prompt '$prompt'"

# --- the store, its profile, and what nginx serves ----------------------------
www=$work/www
mkdir -p "$www"
[ -f "$work/key" ] || "$bin/image-build" keygen --secret "$work/key" --public "$work/key.pub" >/dev/null
stamp="$(realpath "$image") $(stat -c '%s %Y' "$image")"
if [ "$(cat "$work/store.stamp" 2>/dev/null)" != "$stamp" ]; then
	rm -rf "$www/store" "$work/store.stamp"
	"$bin/image-build" add --store "$www/store" --distro bench --date 2026-11-22 --memory-mib "$MEM" --cpus "$SMP" \
		--key "$work/key" "$image" >"$work/add.log"
	ln -f "$image" "$www/image.img" 2>/dev/null || cp --sparse=always "$image" "$www/image.img"
	echo "$stamp" >"$work/store.stamp"
fi
has_profile() {
	"$bin/image-build" list --store "$www/store" --json | sed -n 's/^ *"profile": "\([0-9a-f]*\)".*/\1/p'
}
if [ -z "$(has_profile)" ]; then
	log "recording the boot profile (image-build profile, TCG)"
	if ! "$bin/image-build" profile --store "$www/store" --distro bench --date 2026-11-22 --key "$work/key" \
		--timeout "$BOOT_TIMEOUT" --serial-log "$work/profile-serial.log" >"$work/profile.log" 2>&1; then
		log "WARNING: image-build profile failed (see $work/profile.log); prefetch has no profile"
	fi
fi
profile=$(has_profile)

nginx_start "$www" "$NGINX_PORT"
no_prefetch=(--no-prefetch)
if ! "$bin/blockfs" mount --help 2>/dev/null | grep -q -- --no-prefetch; then
	no_prefetch=()
	log "WARNING: this blockfs has no prefetch (no --no-prefetch flag): both Circular rows are without it"
fi

# --- pieces -----------------------------------------------------------------
# proxy_start RTT_MS MBIT: netshape in front of nginx, fresh counters.
proxy_start() {
	"$bin/netshape" --listen 127.0.0.1:$PROXY_PORT --to 127.0.0.1:$NGINX_PORT --rtt-ms "$1" --rate-mbit "$2" \
		>"$work/proxy.out" 2>>"$work/proxy.log" &
	PROXY_PID=$!
	for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$PROXY_PORT) 2>/dev/null && return; sleep 0.1; done
	log "netshape did not start"; exit 1
}
# proxy_stop: prints "MB_down requests connections".
proxy_stop() {
	kill -TERM "$PROXY_PID"; wait "$PROXY_PID" || true; PROXY_PID=
	python3 - "$work/proxy.out" <<'PY'
import json, sys
s = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
# One connection was proxy_start's readiness probe.
print("%.1f %d %d" % (s["bytes_down"] / 1e6, s["requests"], max(s["connections"] - 1, 0)))
PY
}
# --no-fill: the figures are a boot's bytes and time until the replay's last read;
# the background fill would fetch the rest of the image in the replay's gaps.
mount_start() { # extra blockfs flags...
	rm -rf "$work/cache" "$work/mnt"; mkdir -p "$work/cache" "$work/mnt"
	"$bin/blockfs" mount --no-fill --cache "$work/cache" --public "$work/key.pub" "$@" \
		"http://127.0.0.1:$PROXY_PORT/store/" "$work/mnt" 2>>"$work/blockfs.log" &
	BLOCKFS_PID=$!
	for _ in $(seq 300); do [ -e "$work/mnt/status.json" ] && return; sleep 0.1; done
	log "blockfs did not mount; see $work/blockfs.log"; exit 1
}
# mount_stop: prints the MB blockfs fetched on a guess (readahead, prefetch) that
# nothing read (status.json: wasted_bytes + unread_ahead_bytes), then unmounts.
mount_stop() {
	python3 -c 'import json, sys; s = json.load(open(sys.argv[1]))
print("%.1f" % ((s.get("wasted_bytes", 0) + s.get("unread_ahead_bytes", 0)) / 1e6))' "$work/mnt/status.json" 2>/dev/null || echo "-"
	kill "$BLOCKFS_PID"; wait "$BLOCKFS_PID" || true; BLOCKFS_PID=
}
# boot LABEL --image FILE|--url URL [qemu args...]: seconds to the prompt ("timeout" if none).
# --url: QEMU reads the image itself over HTTP (its curl driver).
boot() {
	local label=$1 base_flag=$2 base=$3; shift 3
	local serial=$work/serial-$label.log ov=$work/overlay.qcow2 line
	local -a qemu
	rm -f "$serial" "$ov"
	# The overlay's recorded backing path is never opened: the launcher's backing=base overrides it.
	qemu-img create -q -f qcow2 -u -F raw -b /nonexistent "$ov" "$image_size"
	line=$("$bin/circular" qemu-command --distribution bench --date 2026-11-22 --accel tcg --display none \
		--memory-mib "$MEM" --cpus "$SMP" --overlay "$ov" "$base_flag" "$base") ||
		{ log "circular qemu-command failed"; return 1; }
	mapfile -t qemu <<<"$line"
	local t0; t0=$(now)
	# --display none is -nographic: the serial console (and QEMU's monitor, on
	# ctrl-a c) is on stdin/stdout, so stdin is nothing and stdout the log.
	"${qemu[@]}" "$@" </dev/null >"$serial" 2>>"$work/qemu.log" &
	QEMU_PID=$!
	local result=timeout
	while kill -0 "$QEMU_PID" 2>/dev/null; do
		if grep -qa -- "$prompt" "$serial" 2>/dev/null; then
			result=$(python3 -c "print(f'{$(now) - $t0:.1f}')"); break
		fi
		if python3 -c "import sys; sys.exit(0 if $(now) - $t0 > $BOOT_TIMEOUT else 1)"; then break; fi
		sleep 0.1
	done
	kill "$QEMU_PID" 2>/dev/null || true; wait "$QEMU_PID" 2>/dev/null || true; QEMU_PID=
	echo "$result"
}
row() { printf '%-14s %-12s %9s %10s %9s %6s %7s\n' "$@" | tee -a "$work/results.txt"; }

# --- the recorded reads for replay: one local boot with QEMU's read trace ------
ranges=$work/ranges.txt
if [ ! -s "$ranges" ] || [ "$(cat "$work/ranges.stamp" 2>/dev/null)" != "$stamp" ]; then
	log "recording the boot's reads (local boot with QEMU's blk_co_preadv trace)"
	rm -f "$work/qemu-trace.log"
	t=$(boot trace --image "$www/image.img" -trace "enable=blk_co_preadv,file=$work/qemu-trace.log")
	n=$(python3 bench/replay.py ranges "$work/qemu-trace.log" "$ranges")
	echo "$stamp" >"$work/ranges.stamp"
	log "local boot $t s, $n reads recorded"
fi
read_count=$(wc -l <"$ranges")
read_mb=$(awk '{s += $2} END {printf "%.1f", s / 1e6}' "$ranges")

shapes=("50 50" "10 200")
[ "${BENCH_QUICK:-}" = 1 ] && shapes=("50 50")
: >"$work/results.txt"
{
	echo "Cold boot to '$prompt' ($kind image, $((image_size >> 20)) MiB; TCG, $SMP vCPU, $MEM MiB)."
	echo "The boot reads $read_mb MB in $read_count requests. Profile: ${profile:-none}."
	for shape in "${shapes[@]}"; do
		set -- $shape
		read -r blocks mb secs < <(python3 bench/replay.py limit "$ranges" "$www/store" "$1" "$2")
		echo "Link limit at ${1}ms/${2}Mbit: the $blocks blocks it touches, $mb MB stored, take $secs s (at the rate, plus one RTT)."
	done
	echo "unread: MB blockfs fetched on a guess (readahead, prefetch) that nothing read (status.json)."
} | tee -a "$work/results.txt"
row "link" "method" "boot s" "MB moved" "requests" "conns" "unread"
for shape in "${shapes[@]}"; do
	set -- $shape
	rtt=$1 mbit=$2 link="${1}ms/${2}Mbit"
	for method in prefetch no-prefetch qemu-curl download local; do
		case $method in
		prefetch | no-prefetch)
			proxy_start "$rtt" "$mbit"
			if [ $method = prefetch ]; then mount_start; else mount_start "${no_prefetch[@]}"; fi
			t=$(boot "$method" --image "$work/mnt/bench/2026-11-22.img")
			unread=$(mount_stop)
			row "$link" "$method" "$t" $(proxy_stop) "$unread"
			;;
		qemu-curl)
			proxy_start "$rtt" "$mbit"
			t=$(boot "$method" --url "http://127.0.0.1:$PROXY_PORT/image.img")
			row "$link" "$method" "$t" $(proxy_stop)
			;;
		download)
			proxy_start "$rtt" "$mbit"
			rm -f "$work/download.img"
			t0=$(now)
			curl -sf -o "$work/download.img" "http://127.0.0.1:$PROXY_PORT/image.img"
			t1=$(now)
			t=$(boot "$method" --image "$work/download.img")
			dl=$(python3 -c "print(f'{$t1 - $t0:.1f}')")
			[ "$t" = timeout ] || t=$(python3 -c "print(f'{$dl + $t:.1f}')")
			row "$link" "$method" "$t" $(proxy_stop)
			rm -f "$work/download.img"
			;;
		local)
			t=$(boot "$method" --image "$www/image.img")
			row "$link" "$method" "$t" 0 0 0
			;;
		esac
	done
done

echo | tee -a "$work/results.txt"
echo "Replay of the boot's $read_count reads ($read_mb MB), one reader in order, empty cache:" | tee -a "$work/results.txt"
row "link" "method" "replay s" "MB moved" "requests" "conns" "unread"
for shape in "${shapes[@]}"; do
	set -- $shape
	rtt=$1 mbit=$2 link="${1}ms/${2}Mbit"
	for method in prefetch no-prefetch qemu-curl local; do
		case $method in
		prefetch | no-prefetch)
			proxy_start "$rtt" "$mbit"
			if [ $method = prefetch ]; then mount_start; else mount_start "${no_prefetch[@]}"; fi
			t=$(python3 bench/replay.py file "$ranges" "$work/mnt/bench/2026-11-22.img")
			unread=$(mount_stop)
			row "$link" "$method" "$t" $(proxy_stop) "$unread"
			;;
		qemu-curl)
			proxy_start "$rtt" "$mbit"
			t=$(python3 bench/replay.py qemu-io "$ranges" "http://127.0.0.1:$PROXY_PORT/image.img")
			row "$link" "$method" "$t" $(proxy_stop)
			;;
		local)
			t=$(python3 bench/replay.py file "$ranges" "$www/image.img")
			row "$link" "$method" "$t" 0 0 0
			;;
		esac
	done
done
log "results in $work/results.txt"
