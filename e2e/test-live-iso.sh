#!/bin/bash
# End-to-end test of a real live system as a lazy CD-ROM: the Debian 12 live ISO that
# `DEMO_LIVE=1 make demo` builds with live-build (e2e/lib/live-iso.sh), published with its
# SHA-256 and the demo's login hint, served by nginx on loopback, mounted with blockfs and
# booted with the command the menu's VM launcher runs (`circular qemu-command --media cdrom`,
# SeaBIOS, TCG, the memory `add` proposed). One boot checks:
#   1. `add` sees ISO 9660 (media cdrom) and the catalog keeps the source and the login hint;
#   2. isolinux starts the live kernel, live-boot finds its medium on the CD drive and
#      systemd reaches Debian's `login:` prompt on the serial console;
#   3. the login hint is true: the user and password it names log in, `id` says so, and
#      live-boot's medium is mounted from /dev/sr0 (the CD drive, read through the mount);
#   4. nginx served less than the ISO's size to reach `login:` (the figure is printed and
#      kept in $BUILD/demo/live/boot.txt, which the demo shows).
# The ISO takes minutes to build, so `make test` does not build it: without it this script
# prints a SKIP line (counted by e2e/suite.sh) and exits 0.
# Stops only what it started, by PID.
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
# shellcheck source=lib/nginx.sh
source e2e/lib/nginx.sh
# shellcheck source=lib/live-iso.sh
source e2e/lib/live-iso.sh

live_dir=$BUILD/demo/live
live_iso_path "$live_dir"
if [ ! -f "$LIVE_ISO" ]; then
	echo "SKIP test-live-iso: no live ISO at $LIVE_ISO (build it once with: DEMO_LIVE=1 make demo)"
	exit 0
fi
need_root
need_bins blockfs image-build circular

# Boots to login in about 13 minutes under TCG on this loaded machine (load 15), less idle.
BOOT_TIMEOUT=${BOOT_TIMEOUT:-1800}
DATE=2026-11-22

work_dir e2e-live
NGINX_RUN=$work/nginx
BLOCKFS_PID= QEMU_PID=
cleanup() {
	stop_pids "$QEMU_PID" "$BLOCKFS_PID"
	nginx_stop
}
at_exit cleanup

step "publish the live ISO with its SHA-256 and the login hint"
"$bin/image-build" keygen --secret "$work/key" --public "$work/key.pub" >/dev/null
sum=$(sha256sum "$LIVE_ISO" | cut -d' ' -f1)
# As the demo publishes it.
live_iso_add "$work/store" "$work/key" "$DATE" >"$work/add.log"
expect '^boot: +cdrom, [0-9]+ MiB' "$work/add.log"
"$bin/image-build" list --store "$work/store" --json >"$work/list.json"
# What the menu would use: the medium, the memory and the login hint, from the catalog.
read -r media memory user password < <(python3 - "$work/list.json" "$sum" <<'PY'
import json, re, sys
s = json.load(open(sys.argv[1]))["snapshots"][0]
assert s["source"]["sha256"] == sys.argv[2], s
m = re.fullmatch(r"(\S+), password (\S+)", s["login"])
assert m, "login hint %r does not say user and password" % s["login"]
print(s["media"], s["memory_mib"], m[1], m[2])
PY
) || fail "the catalog lacks the source or the login hint: $(cat "$work/list.json")"
[ "$media" = cdrom ] || fail "add did not see ISO 9660: media $media"

step "serve with nginx, mount with blockfs"
port=$(free_port)
nginx_start "$work" "$port"
mkdir -p "$work/mnt" "$work/cache"
# --no-fill: this test counts what the boot itself reads. The background fill
# (blockfs's fill tests, test-usb-boot's offline boot) would fetch the rest of the
# ISO in the boot's quiet gaps, and nginx's log would count it as the boot's.
"$bin/blockfs" mount --no-fill --cache "$work/cache" --public "$work/key.pub" \
	"http://127.0.0.1:$port/store/" "$work/mnt" 2>"$work/blockfs.log" &
BLOCKFS_PID=$!
for _ in $(seq 300); do [ -e "$work/mnt/status.json" ] && break; sleep 0.1; done
[ -e "$work/mnt/status.json" ] || fail "blockfs did not mount: $(cat "$work/blockfs.log")"
image=$work/mnt/debian-live/$DATE.img
size=$(stat -c %s "$image")
block_bytes() { awk '$7 ~ /\/blocks\// {s += $10; n++} END {print s + 0, n + 0}' "$NGINX_RUN/access.log"; }

step "boot it as a CD-ROM under SeaBIOS (TCG, $memory MiB)"
"$bin/circular" qemu-command --distribution debian-live --date "$DATE" --accel tcg --display none \
	--memory-mib "$memory" --cpus 1 --media cdrom --image "$image" >"$work/qemu.cmd"
grep -qx 'ide-cd,drive=base,bootindex=0' "$work/qemu.cmd" || fail "no CD drive in $(cat "$work/qemu.cmd")"
mapfile -t qemu <"$work/qemu.cmd"
# --display none puts the serial console on QEMU's standard input and output: the input is
# a FIFO this script writes to (held open on fd 3 so QEMU never sees end of file).
mkfifo "$work/console.in"
exec 3<>"$work/console.in"
t0=$SECONDS
"${qemu[@]}" <"$work/console.in" >"$work/serial.log" 2>"$work/qemu.log" &
QEMU_PID=$!
type_line() { printf '%s\r' "$1" >&3; }
# wait_for REGEX [AFTER]: until REGEX is on the console after byte AFTER of its log.
wait_for() {
	local from=${2:-0}
	while :; do
		# Through a file: grep -q ending the pipe early would fail it under pipefail.
		tail -c +"$((from + 1))" "$work/serial.log" | tr -d '\033\r' >"$work/console.txt"
		grep -qaE -- "$1" "$work/console.txt" && return 0
		kill -0 "$QEMU_PID" 2>/dev/null || fail "QEMU ended: $(cat "$work/qemu.log")"
		((SECONDS - t0 < BOOT_TIMEOUT)) || { tail -c 3000 "$work/serial.log" >&2; fail "/$1/ not on the serial console after ${BOOT_TIMEOUT}s"; }
		sleep 1
	done
}
wait_for 'Linux version [0-9]'
wait_for '^[a-z0-9.-]+ login: '
secs=$((SECONDS - t0))
read -r fetched requests < <(block_bytes)
mb() { python3 -c "print(f'{$1 / 1e6:.0f}')"; }
echo "login: on the serial console after $secs s; nginx served $(mb "$fetched") MB of the ISO's $(mb "$size") MB in $requests block requests"
((fetched > 0)) || fail "nginx served no block, so the boot did not read through the mount"
((fetched < size)) || fail "fetched $fetched bytes, not less than the ISO's $size"

step "log in with the hint's user '$user' and password '$password'"
mark=$(stat -c %s "$work/serial.log")
type_line "$user"
wait_for 'Password: *$' "$mark"
mark=$(stat -c %s "$work/serial.log")
type_line "$password"
wait_for '\$ *$' "$mark"
mark=$(stat -c %s "$work/serial.log")
# The echoed command line differs from its output: "medium=$(...)" and "checks-$((1 + 1))".
type_line 'id; echo "medium=$(findmnt -n -o SOURCE /run/live/medium)"; echo "checks-$((1 + 1))"'
wait_for 'checks-2' "$mark"
tail -c +"$((mark + 1))" "$work/serial.log" | tr -d '\r' >"$work/session.txt"
expect "uid=[0-9]+\($user\)" "$work/session.txt"
expect 'medium=/dev/sr0' "$work/session.txt"
cat "$work/session.txt"; echo

mkdir -p "$live_dir"
echo "the live ISO ($(mb "$size") MB) booted to login after fetching $(mb "$fetched") MB" \
	"($requests requests, $secs s under TCG, SeaBIOS, $memory MiB)" | tee "$live_dir/boot.txt"
echo "PASS: the Debian live ISO booted to login: from the lazy mount as a CD-ROM, fetching $(mb "$fetched") of $(mb "$size") MB; its login hint logs in"
