#!/bin/bash
# Cold boot of the Debian 12 live ISO (issue 12) through a shaped link: the ISO that
# `DEMO_LIVE=1 make demo` builds (e2e/lib/live-iso.sh), published as a CD-ROM, served by
# nginx on loopback behind netshape (50 ms RTT, 50 Mbit/s, as bench/coldboot.sh's first
# link; BENCH_LIVE_LINK="RTT_MS MBIT" to change), mounted by blockfs with an empty cache and
# booted with the VM launcher's command (`circular qemu-command --media cdrom`, SeaBIOS,
# TCG, 1 vCPU, the memory `add` proposed) to `login:` on the serial console.
# One row for that boot: seconds to login, MB that crossed the link against the ISO's size,
# HTTP requests, connections; and one row for what other tools do first: download the whole
# ISO over the same link (its time, before any boot).
# Without the ISO it prints a "skipped" line and exits 0 (the ISO is built on request only).
# Results: stdout and build/bench-live-iso/results.txt.
# shellcheck source=../e2e/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../e2e/lib/common.sh"
# shellcheck source=../e2e/lib/nginx.sh
source e2e/lib/nginx.sh
# shellcheck source=../e2e/lib/live-iso.sh
source e2e/lib/live-iso.sh

live_iso_path "$BUILD/demo/live"
if [ ! -f "$LIVE_ISO" ]; then
	echo "live-iso bench: skipped: run DEMO_LIVE=1 make demo first (no live ISO at $LIVE_ISO)"
	exit 0
fi
need_bins blockfs image-build circular netshape
read -r RTT MBIT <<<"${BENCH_LIVE_LINK:-50 50}"
BOOT_TIMEOUT=${BENCH_BOOT_TIMEOUT:-2400}
DATE=2026-11-22
work=$BUILD/bench-live-iso
mkdir -p "$work"
NGINX_RUN=$work/nginx
BLOCKFS_PID= PROXY_PID= QEMU_PID=
cleanup() {
	stop_pids "$QEMU_PID" "$BLOCKFS_PID" "$PROXY_PID"
	nginx_stop
}
at_exit cleanup
now() { date +%s.%N; }
since() { python3 -c "print(f'{$(now) - $1:.1f}')"; }

# The store, made again only when the ISO changed.
www=$work/www
stamp="$(realpath "$LIVE_ISO") $(stat -c '%s %Y' "$LIVE_ISO")"
if [ "$(cat "$work/store.stamp" 2>/dev/null)" != "$stamp" ]; then
	rm -rf "$www" "$work/store.stamp"
	mkdir -p "$www"
	[ -f "$work/key" ] || "$bin/image-build" keygen --secret "$work/key" --public "$work/key.pub" >/dev/null
	live_iso_add "$www/store" "$work/key" "$DATE" >"$work/add.log"
	ln -f "$LIVE_ISO" "$www/live.iso" 2>/dev/null || cp "$LIVE_ISO" "$www/live.iso"
	echo "$stamp" >"$work/store.stamp"
fi
memory=$("$bin/image-build" list --store "$www/store" --json | sed -n 's/^ *"memory_mib": \([0-9]*\).*/\1/p')
iso_size=$(stat -c %s "$LIVE_ISO")

port=$(free_port)
nginx_start "$www" "$port"

# proxy_start: netshape in front of nginx, fresh counters in $work/proxy.json.
proxy_start() {
	PROXY_PORT=$(free_port)
	rm -f "$work/proxy.json"
	"$bin/netshape" --listen "127.0.0.1:$PROXY_PORT" --to "127.0.0.1:$port" --rtt-ms "$RTT" --rate-mbit "$MBIT" \
		--stats "$work/proxy.json" >/dev/null 2>>"$work/proxy.log" &
	PROXY_PID=$!
	for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$PROXY_PORT") 2>/dev/null && return; sleep 0.1; done
	fail "netshape did not start; see $work/proxy.log"
}
# proxy_stop: prints "MB_moved requests connections".
proxy_stop() {
	kill -TERM "$PROXY_PID"; wait "$PROXY_PID" || true; PROXY_PID=
	python3 - "$work/proxy.json" <<'PY'
import json, sys
s = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
# One connection was proxy_start's readiness probe.
print("%.1f %d %d" % (s["bytes_down"] / 1e6, s["requests"], max(s["connections"] - 1, 0)))
PY
}
row() { printf '%-14s %-22s %9s %10s %9s %6s\n' "$@" | tee -a "$work/results.txt"; }

: >"$work/results.txt"
echo "Live ISO cold boot to 'login:' ($((iso_size / 1000000)) MB ISO, Debian 12 live-build; TCG, SeaBIOS, 1 vCPU, $memory MiB)." |
	tee -a "$work/results.txt"
row "link" "method" "seconds" "MB moved" "requests" "conns"
link="${RTT}ms/${MBIT}Mbit"

# 1. Circular: blockfs over the shaped link, empty cache, boot to login.
proxy_start
rm -rf "$work/cache" "$work/mnt"; mkdir -p "$work/cache" "$work/mnt"
# --no-fill: the bytes counted are the boot's own; the background fill would fetch
# the rest of the image in the boot's quiet gaps.
"$bin/blockfs" mount --no-fill --cache "$work/cache" --public "$work/key.pub" \
	"http://127.0.0.1:$PROXY_PORT/store/" "$work/mnt" 2>>"$work/blockfs.log" &
BLOCKFS_PID=$!
for _ in $(seq 300); do [ -e "$work/mnt/status.json" ] && break; sleep 0.1; done
[ -e "$work/mnt/status.json" ] || fail "blockfs did not mount; see $work/blockfs.log"
"$bin/circular" qemu-command --distribution debian-live --date "$DATE" --accel tcg --display none \
	--memory-mib "$memory" --cpus 1 --media cdrom --image "$work/mnt/debian-live/$DATE.img" >"$work/qemu.cmd"
mapfile -t qemu <"$work/qemu.cmd"
t0=$(now)
# --display none: the serial console is QEMU's standard output.
"${qemu[@]}" </dev/null >"$work/serial.log" 2>"$work/qemu.log" &
QEMU_PID=$!
result=timeout
while kill -0 "$QEMU_PID" 2>/dev/null; do
	tr -d '\r' <"$work/serial.log" >"$work/console.txt"
	if grep -qaE '^[a-z0-9.-]+ login: ' "$work/console.txt"; then result=$(since "$t0"); break; fi
	python3 -c "import sys; sys.exit(0 if $(now) - $t0 > $BOOT_TIMEOUT else 1)" && break
	sleep 0.5
done
kill "$QEMU_PID" 2>/dev/null || true; wait "$QEMU_PID" 2>/dev/null || true; QEMU_PID=
kill "$BLOCKFS_PID"; wait "$BLOCKFS_PID" || true; BLOCKFS_PID=
read -r moved requests conns < <(proxy_stop)
row "$link" "blockfs, boot to login" "$result" "$moved" "$requests" "$conns"
[ "$result" != timeout ] || echo "live-iso bench: no login: after ${BOOT_TIMEOUT}s; see $work/serial.log" >&2

# 2. What a copy-first tool does before it can boot: the whole ISO over the same link.
proxy_start
t0=$(now)
curl -sf -o "$work/download.iso" "http://127.0.0.1:$PROXY_PORT/live.iso"
t=$(since "$t0")
rm -f "$work/download.iso"
row "$link" "download whole ISO" "$t" $(proxy_stop)

echo "The boot moved $moved MB of the ISO's $(python3 -c "print(f'{$iso_size / 1e6:.1f}')") MB" \
	"($(python3 -c "print(f'{100 * $moved * 1e6 / $iso_size:.0f}')")%)." | tee -a "$work/results.txt"
echo "results in $work/results.txt"
