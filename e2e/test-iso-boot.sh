#!/bin/bash
# End-to-end test of CD-ROM snapshots: Debian's own bootable ISOs, published with
# their SHA-256, served by nginx on loopback, mounted lazily with blockfs, and booted
# with the command the menu's VM launcher runs (`circular qemu-command --media cdrom`):
#   1. a wrong --source-sha256 is refused and the store stays byte for byte as it was;
#   2. with the right one, `add` detects ISO 9660 (media cdrom), the catalog records the
#      source, `image-build list --json` shows both, `image-build verify` passes;
#   3. GRUB rescue (grub-rescue-pc, BIOS only) boots under SeaBIOS from the IDE CD drive:
#      its own menu title "GNU GRUB  version" is in the VGA text buffer (read with QMP
#      pmemsave at 0xb8000, the char/attribute pairs decoded);
#   4. memtest86+ (BIOS and UEFI) boots under SeaBIOS to its banner "Memtest86+ v" in
#      the same buffer, and under OVMF: the firmware's boot manager starts the DVD-ROM
#      (serial console), then memtest86+ draws its screen in the UEFI framebuffer, which
#      has no text buffer: the screendump must show its layout (the light grey title bar
#      at the top left, the blue test screen, the grey key bar at the bottom);
#   5. nginx's access log shows that each boot fetched less than the ISO's size.
# Images are Debian's files, untouched. Stops only what it started, by PID.
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
# shellcheck source=lib/nginx.sh
source e2e/lib/nginx.sh

need_root
need_bins blockfs image-build circular

MEMTEST=/usr/lib/memtest86+/memtest86+x64.iso
GRUB_RESCUE=/usr/lib/grub-rescue/grub-rescue-cdrom.iso
for f in "$MEMTEST:memtest86+" "$GRUB_RESCUE:grub-rescue-pc"; do
	[ -f "${f%%:*}" ] || fail "${f%%:*} is missing: install Debian's ${f##*:} (make deps)"
done
# A guest that never shows its banner fails after this long (TCG on a loaded machine).
BOOT_TIMEOUT=${BOOT_TIMEOUT:-240}
DATE=2026-11-22

work_dir e2e-iso
NGINX_RUN=$work/nginx
BLOCKFS_PID= QEMU_PID=
cleanup() {
	stop_pids "$QEMU_PID" "$BLOCKFS_PID"
	nginx_stop
}
at_exit cleanup

store=$work/store
ib() { "$bin/image-build" "$@"; }
ib keygen --secret "$work/key" --public "$work/key.pub" >/dev/null
# What the store holds, file by file: the same listing means nothing was touched.
store_state() { (cd "$store" && find . -path ./tmp/.lock -prune -o -print0 | sort -z | xargs -0 sha1sum -- 2>/dev/null; find . | sort); }

step "add the GRUB rescue ISO with its SHA-256"
sum_grub=$(sha256sum "$GRUB_RESCUE" | cut -d' ' -f1)
ib add --store "$store" --key "$work/key" --distro grub-rescue --date "$DATE" --title "GRUB rescue CD" \
	--source-url "file://$GRUB_RESCUE" --source-sha256 "$sum_grub" --login "none: GRUB's own shell" \
	"$GRUB_RESCUE" >"$work/add-grub.log"
expect '^boot: +cdrom, 1280 MiB \(proposed' "$work/add-grub.log"

step "a wrong --source-sha256 is refused and leaves the store untouched"
sum_memtest=$(sha256sum "$MEMTEST" | cut -d' ' -f1)
wrong=$(printf '%s' "$sum_memtest" | tr '0-9a-f' '1-9a-f0')
before=$(store_state)
if ib add --store "$store" --key "$work/key" --distro memtest --date "$DATE" --source-sha256 "$wrong" \
	"$MEMTEST" >"$work/add-wrong.log" 2>&1; then
	fail "add accepted a wrong --source-sha256: $(cat "$work/add-wrong.log")"
fi
expect "its SHA-256 is $sum_memtest, not $wrong" "$work/add-wrong.log"
expect "store was not touched" "$work/add-wrong.log"
[ "$(store_state)" = "$before" ] || fail "the refused add changed the store"

step "the right one is recorded; list shows medium and source; verify passes"
ib add --store "$store" --key "$work/key" --distro memtest --date "$DATE" --title "Memtest86+" \
	--firmware uefi --source-url "file://$MEMTEST" --source-sha256 "$sum_memtest" "$MEMTEST" >"$work/add-memtest.log"
ib list --store "$store" --json >"$work/list.json"
python3 - "$work/list.json" "$sum_memtest" "$sum_grub" <<'PY' || fail "list --json: $(cat "$work/list.json")"
import json, sys
doc, memtest, grub = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3]
s = {x["distribution"]: x for x in doc["snapshots"]}
assert s["memtest"]["media"] == "cdrom" and s["grub-rescue"]["media"] == "cdrom", s
assert s["memtest"]["source"]["sha256"] == memtest, s["memtest"]
assert s["grub-rescue"]["source"] == {"url": "file:///usr/lib/grub-rescue/grub-rescue-cdrom.iso", "sha256": grub}
assert s["grub-rescue"]["login"] == "none: GRUB's own shell"
assert s["memtest"]["firmware"] == "uefi"
PY
ib list --store "$store" >"$work/list.txt"
expect "^memtest +Memtest86\+ +$DATE .* cdrom " "$work/list.txt"
expect "^memtest/$DATE: source: bit-identical to file://${MEMTEST//+/\\+} \(SHA-256 $sum_memtest\)" "$work/list.txt"
ib verify --store "$store" --public "$work/key.pub" >"$work/verify.log"
expect "is sound" "$work/verify.log"

step "serve with nginx, mount with blockfs"
port=$(free_port)
nginx_start "$work" "$port"
mkdir -p "$work/mnt" "$work/cache"
# --no-fill: the bytes counted are the boot's own; the background fill would fetch
# the rest of the image in the boot's quiet gaps.
"$bin/blockfs" mount --no-fill --cache "$work/cache" --public "$work/key.pub" \
	"http://127.0.0.1:$port/store/" "$work/mnt" 2>"$work/blockfs.log" &
BLOCKFS_PID=$!
for _ in $(seq 300); do [ -e "$work/mnt/status.json" ] && break; sleep 0.1; done
[ -e "$work/mnt/status.json" ] || fail "blockfs did not mount: $(cat "$work/blockfs.log")"

# Bytes nginx sent for block files since line $1 of its access log.
block_bytes_since() {
	tail -n +"$(($1 + 1))" "$NGINX_RUN/access.log" | awk '$7 ~ /\/blocks\// {s += $10} END {print s + 0}'
}
log_lines() { wc -l <"$NGINX_RUN/access.log"; }

# The VGA text screen as lines of text: 80x25 char/attribute pairs at 0xb8000.
vga_text() { python3 e2e/lib/qmp.py "$1" vga-text "$2"; }

declare -A first_line=()
label= distro= t0=0
# The UEFI framebuffer, as a screendump (PPM), has memtest86+'s layout: its title bar
# (light grey, 0xaaaaaa, top left), the blue test screen (0x0000aa) and its key bar
# (light grey, the bottom row). Prints "memtest86+ screen" when it has, else what it saw.
memtest_screen() {
	python3 e2e/lib/qmp.py "$1" screendump-ppm "$2" || return 1
	python3 - "$2" <<'PY'
import sys
data = open(sys.argv[1], "rb").read()
magic, w, h, _max, pixels = data.split(maxsplit=4)
w, h = int(w), int(h)
px = lambda x, y: tuple(pixels[(y * w + x) * 3:(y * w + x) * 3 + 3])
def share(x0, y0, x1, y1, want):
    cells = [(x, y) for y in range(y0, y1, 2) for x in range(x0, x1, 2)]
    return sum(1 for x, y in cells if all(abs(a - b) < 0x20 for a, b in zip(px(x, y), want))) / len(cells)
grey, blue = (0xAA, 0xAA, 0xAA), (0x00, 0x00, 0xAA)
# Its 80x25 cells of 8x16 pixels are centred in the framebuffer: find the drawn rows.
drawn = [y for y in range(h) if any(px(x, y) != (0, 0, 0) for x in range(0, w, 4))] or [0, h - 1]
top, bottom = drawn[0], drawn[-1] + 1
title = share(0, top, w // 4, top + 16, grey)
screen = share(0, (top + bottom) // 2, w, (top + bottom) // 2 + 64, blue)
keys = share(0, bottom - 16, w, bottom, grey)
seen = f"title bar {title:.0%} grey, test screen {screen:.0%} blue, key bar {keys:.0%} grey"
print("memtest86+ screen: " + seen if title > 0.5 and screen > 0.9 and keys > 0.5 else "not yet: " + seen)
PY
}

# boot LABEL DISTRO bios|uefi: starts the snapshot with the launcher's command (QEMU_PID).
boot() {
	label=$1 distro=$2
	local firmware=$3 image=$work/mnt/$2/$DATE.img
	local -a flags=() qemu
	if [ "$firmware" = uefi ]; then
		cp /usr/share/OVMF/OVMF_VARS_4M.fd "$work/$label.vars.fd"
		flags=(--uefi-vars "$work/$label.vars.fd")
	fi
	"$bin/circular" qemu-command --distribution "$distro" --date "$DATE" --accel tcg --display none \
		--memory-mib 256 --cpus 1 --media cdrom --image "$image" "${flags[@]}" >"$work/$label.cmd"
	grep -qx 'ide-cd,drive=base,bootindex=0' "$work/$label.cmd" || fail "$label: no CD drive in $(cat "$work/$label.cmd")"
	mapfile -t qemu <"$work/$label.cmd"
	# Counted from the distribution's first boot: a second boot reads from the cache.
	[ -n "${first_line[$distro]:-}" ] || first_line[$distro]=$(log_lines)
	t0=$SECONDS
	"${qemu[@]}" -qmp "unix:$work/$label.qmp,server=on,wait=off" </dev/null >"$work/$label.serial" 2>"$work/$label.qemu.log" &
	QEMU_PID=$!
}

# see WHAT PATTERN: waits until PATTERN (extended regex) is in WHAT (vga: the text screen;
# serial: the console; memtest-fb: the UEFI framebuffer, see memtest_screen), then checks
# what nginx served for the distribution so far.
see() {
	local what=$1 pattern=$2 qmp=$work/$label.qmp screen=$work/$label.$1.txt
	while :; do
		kill -0 "$QEMU_PID" 2>/dev/null || fail "$label: QEMU ended: $(cat "$work/$label.qemu.log")"
		case $what in
		vga) [ -S "$qmp" ] && vga_text "$qmp" "$work/$label.vga" >"$screen" 2>/dev/null && grep -qE -- "$pattern" "$screen" && break ;;
		memtest-fb) [ -S "$qmp" ] && memtest_screen "$qmp" "$work/$label.ppm" >"$screen" 2>/dev/null && grep -qE -- "$pattern" "$screen" && break ;;
		serial) tr -d '\033' <"$work/$label.serial" >"$screen" && grep -qaE -- "$pattern" "$screen" && break ;;
		esac
		((SECONDS - t0 < BOOT_TIMEOUT)) || { cat "$screen" >&2; fail "$label: /$pattern/ not on the $what screen after ${BOOT_TIMEOUT}s"; }
		sleep 1
	done
	local size fetched
	size=$(stat -c %s "$work/mnt/$distro/$DATE.img")
	fetched=$(block_bytes_since "${first_line[$distro]}")
	echo "$label: $(grep -aE -m1 -o -- "$pattern.{0,40}" "$screen") after $((SECONDS - t0)) s; $distro fetched so far: $fetched of $size bytes"
	((fetched > 0)) || fail "$label: nginx served no block, so the boot did not read through the mount"
	((fetched < size)) || fail "$label: fetched $fetched bytes, not less than the ISO's $size"
}
stop() { kill "$QEMU_PID"; wait "$QEMU_PID" 2>/dev/null || true; QEMU_PID=; }

step "GRUB rescue under SeaBIOS"
boot grub-bios grub-rescue bios
see vga 'GNU GRUB +version'
stop
step "memtest86+ under SeaBIOS"
boot memtest-bios memtest bios
see vga 'Memtest86\+ v[0-9]'
stop
step "memtest86+ under OVMF"
boot memtest-uefi memtest uefi
see serial 'BdsDxe: starting Boot[0-9A-F]+ "UEFI QEMU DVD-ROM'
see memtest-fb '^memtest86\+ screen'
stop

echo "PASS: ISOs published with their SHA-256, mounted lazily and booted as CD-ROMs under SeaBIOS and OVMF"
