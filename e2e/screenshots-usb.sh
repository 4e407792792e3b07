#!/usr/bin/env bash
# Screenshots for the docs (not a test; run after e2e/test-usb-boot.sh, whose
# build/e2e-usb artifacts it reuses): boots the stick with the normal GRUB entry
# (the menu on the VGA console, guests in QEMU's curses display), and saves
#   docs/appliance-menu.png   the boot menu on the VGA console
#   docs/appliance-guest.png  the tiny guest running full screen
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-$PWD/build}
W=$BUILD/e2e-usb
REL=$PWD/target/release
. e2e/lib/nginx.sh
QEMU_PID=
cleanup() { [ -n "$QEMU_PID" ] && kill "$QEMU_PID" 2>/dev/null || true; nginx_stop; }
trap cleanup EXIT
[ -f "$W/store/catalog.json" ] || { echo "run e2e/test-usb-boot.sh first" >&2; exit 1; }
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
nginx_start "$W/store" "$PORT"
"$REL/image-build" usb --server "http://10.0.2.2:$PORT/" --kernel "$W/appliance/vmlinuz" \
	--initramfs "$W/appliance/initramfs.img" --default-entry normal --timeout 1 \
	--extra-args "circular.accel=tcg circular.display=curses loglevel=7" --out "$W/shots-usb.img" >/dev/null
cp "$W/shots-usb.img" "$W/shots-stick.img"; truncate -s 2G "$W/shots-stick.img"
rm -f "$W/shots.sock" "$W/shots.qmp" "$W/shots.log"
qemu-system-x86_64 -accel tcg -m 2048 -smp 2 -display none -vga std -no-reboot \
	-chardev "socket,id=s0,path=$W/shots.sock,server=on,wait=off" -serial chardev:s0 \
	-qmp "unix:$W/shots.qmp,server=on,wait=off" \
	-device qemu-xhci -drive "if=none,id=stick,format=raw,file=$W/shots-stick.img" \
	-device usb-storage,drive=stick,bootindex=0 -nic user,model=virtio-net-pci &
QEMU_PID=$!
python3 e2e/lib/serial_expect.py "$W/shots.sock" "$W/shots.log" "expect:300:menu started" "sleep:4"
mkdir -p docs
python3 e2e/lib/qmp.py "$W/shots.qmp" screendump docs/appliance-menu.png
echo "saved docs/appliance-menu.png"
# Screenshots while the guest runs; keep the one before the last (the last
# may already show the menu again).
python3 e2e/lib/serial_expect.py "$W/shots.sock" "$W/shots.log" \
	"expect:60:circular-menu: booting" "expect:900:circular-menu: guest finished" &
EXP=$!
# Listen first, then choose the snapshot: console output with no listener is lost.
sleep 2
python3 e2e/lib/qmp.py "$W/shots.qmp" keys '2\n'
i=0
while kill -0 "$EXP" 2>/dev/null; do
	i=$((i + 1))
	python3 e2e/lib/qmp.py "$W/shots.qmp" screendump "$W/guest-$((i % 2)).png"
	sleep 1
done
wait "$EXP"
cp "$W/guest-$(((i + 1) % 2)).png" docs/appliance-guest.png
echo "saved docs/appliance-guest.png"
python3 e2e/lib/qmp.py "$W/shots.qmp" keys 'p\n'
wait "$QEMU_PID" || true
QEMU_PID=
