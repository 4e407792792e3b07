#!/usr/bin/env bash
# End-to-end test of the appliance: the USB image boots in QEMU (TCG) as a
# real USB stick (qemu-xhci + usb-storage).
#   boot 1, SeaBIOS, fresh stick, store served by nginx on the host:
#     DHCP lease from QEMU's user network, cache partition found and grown,
#     blockfs mounts the store (10.0.2.2), the ratatui menu shows on the
#     serial console; the test picks the tiny guest snapshot with keys, the
#     nested QEMU prints the guest's marker, the guest powers off, the menu is
#     back; "Power off" in the menu powers the appliance off cleanly.
#   boot 2, OVMF, same stick, nginx stopped: the same snapshot boots from the
#     cache, the marker appears again, power off from the menu.
# Downloads and builds are cached under build/; each run uses a fresh stick.
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
W=$BUILD/e2e-usb
REL=$bin
MARKER=CIRCULAR-GUEST-MARKER
mkdir -p "$W"
# shellcheck source=lib/nginx.sh
source e2e/lib/nginx.sh

log() { printf '== %s\n' "$*"; }
QEMU_PID=
# Only what this script started: its QEMU by PID, its nginx.
at_exit '[ -n "$QEMU_PID" ] && kill "$QEMU_PID" 2>/dev/null; nginx_stop'

need_bins blockfs image-build circular-init circular-menu

if [ ! -f "$W/keys/secret.pem" ]; then
	rm -rf "$W/keys"; mkdir -p "$W/keys"
	"$REL/image-build" keygen --secret "$W/keys/secret.pem" --public "$W/keys/public.pem"
fi

log "appliance kernel + initramfs"
"$REL/image-build" initramfs --public "$W/keys/public.pem" --bins "$REL" \
	--cache "$BUILD/debs" --out "$W/appliance" --level "${ZSTD_LEVEL:-12}" | tee "$W/initramfs-report.txt"

log "tiny guest: Debian kernel + busybox initramfs that prints $MARKER and powers off"
G=$W/guest
rm -rf "$G"; mkdir -p "$G/root/bin" "$G/root/proc" "$G/root/dev"
cp /usr/bin/busybox "$G/root/bin/busybox"
cat >"$G/root/init" <<INIT
#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t devtmpfs dev /dev
/bin/busybox echo "$MARKER: hello from the tiny guest"
# Also on the screen, for the full-screen (curses) screenshot.
/bin/busybox echo "$MARKER: hello from the tiny guest" >/dev/tty0
/bin/busybox sleep 4
/bin/busybox poweroff -f
INIT
chmod +x "$G/root/init"
(cd "$G/root" && find . | cpio -o -H newc --quiet | zstd -q -19 >"$G/initrd.img")
"$REL/image-build" usb --server http://guest.invalid/ --kernel "$W/appliance/vmlinuz" --initramfs "$G/initrd.img" \
	--default-entry serial --timeout 0 --cache-mib 8 --extra-args "quiet panic=-1" --out "$G/disk.img" >/dev/null
rm -rf "$W/store"
"$REL/image-build" add --store "$W/store" --distro tiny --date 2026-11-20 --title "Tiny test guest" \
	--memory-mib 256 --cpus 1 --key "$W/keys/secret.pem" "$G/disk.img"

PORT=$(free_port)
nginx_start "$W/store" "$PORT"
log "store served on 127.0.0.1:$PORT (10.0.2.2:$PORT inside the VM)"

log "USB image"
"$REL/image-build" usb --server "http://10.0.2.2:$PORT/" --kernel "$W/appliance/vmlinuz" \
	--initramfs "$W/appliance/initramfs.img" --default-entry serial --timeout 1 \
	--extra-args "circular.accel=tcg circular.dhcp=20" --out "$W/circular-usb.img" | tee "$W/usb-report.txt"

# A 2 GiB "stick": the image is much smaller, so first boot must grow p2.
STICK=$W/stick.img
cp "$W/circular-usb.img" "$STICK"
truncate -s 2G "$STICK"

boot() { # boot FIRMWARE NAME STEPS...
	local fw=$1 name=$2; shift 2
	local sock=$W/$name.sock fwargs=()
	rm -f "$sock" "$W/$name.log"
	if [ "$fw" = ovmf ]; then
		cp /usr/share/OVMF/OVMF_VARS_4M.fd "$W/$name.vars"
		fwargs=(-drive if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd
			-drive "if=pflash,format=raw,file=$W/$name.vars")
	fi
	qemu-system-x86_64 -accel tcg -m 2048 -smp 2 -display none -vga std -no-reboot \
		"${fwargs[@]}" \
		-chardev "socket,id=s0,path=$sock,server=on,wait=off" -serial chardev:s0 \
		-qmp "unix:$W/$name.qmp,server=on,wait=off" \
		-device qemu-xhci -drive "if=none,id=stick,format=raw,file=$STICK" \
		-device usb-storage,drive=stick,bootindex=0 \
		-nic user,model=virtio-net-pci &
	QEMU_PID=$!
	local t0=$SECONDS rc=0
	python3 e2e/lib/serial_expect.py "$sock" "$W/$name.log" "$@" || rc=$?
	if [ $rc -ne 0 ]; then
		log "$name FAILED after $((SECONDS - t0)) s; serial log: $W/$name.log"
		kill "$QEMU_PID" 2>/dev/null || true
		wait "$QEMU_PID" 2>/dev/null || true
		QEMU_PID=
		return 1
	fi
	wait "$QEMU_PID" || true
	QEMU_PID=
	log "$name passed in $((SECONDS - t0)) s"
}

# The menu (crate `menu`, in circular-menu) draws full screen on the serial
# line at 80x24; `screen:` steps match what a terminal would show. Keys: Enter
# opens and boots (the details screen starts on "Boot"), Backspace goes back,
# j moves down.
choose_and_boot=(
	"screen:120:Choose an operating system"
	"screen:30:> Tiny test guest +latest 2026-11-20"
	"screen:10:Power off"
	"send:\r"
	"screen:30:Tiny test guest: snapshots, newest first"
	"screen:10:> latest \(2026-11-20\)"
	"send:\r"
	"screen:30:VM settings"
	"screen:10:> \[ Boot \]"
	"send:\r"
	"expect:300:Tiny test guest 2026-11-20 is starting under QEMU \(TCG\)"
	"expect:900:$MARKER"
	"screen:120:powered off after"
	"send:\x7f"
	"screen:30:snapshots, newest first"
	"send:\x7f"
	"screen:30:Choose an operating system"
	"send:j"
	"screen:30:> Power off"
	"send:\r"
	"expect:60:powering off"
	"eof:60"
)

log "boot 1: SeaBIOS, fresh stick, store online"
boot seabios boot1 \
	"expect:120:Circular appliance starting" \
	"expect:120:eth0: 10\.0\.2\.15/24" \
	"expect:60:partition /dev/sd[a-z]2 grown" \
	"expect:300:growing the filesystem" \
	"expect:120:store mounted" \
	"${choose_and_boot[@]}"

nginx_stop
log "boot 2: OVMF, same stick, store offline (nginx stopped)"
boot ovmf boot2 \
	"expect:120:Circular appliance starting" \
	"expect:120:cache: CIRCULAR is" \
	"expect:120:store mounted" \
	"${choose_and_boot[@]}"
if grep -aq "growing the filesystem" "$W/boot2.log"; then
	fail "boot 2 grew the cache again: the first grow did not stick"
fi
log "test-usb-boot: PASS"
