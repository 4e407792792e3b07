#!/usr/bin/env bash
# Screenshots for the docs (not a test; run after e2e/test-usb-boot.sh, whose
# build/e2e-usb artifacts it reuses): boots the stick with the normal GRUB entry
# (the menu on the VGA console, guests in QEMU's curses display), and saves
#   docs/appliance-menu.png   the boot menu on the VGA console
#   docs/appliance-guest.png  the tiny guest running full screen
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
W=$BUILD/e2e-usb
REL=$bin
# shellcheck source=lib/nginx.sh
source e2e/lib/nginx.sh
QEMU_PID=
at_exit '[ -n "$QEMU_PID" ] && kill "$QEMU_PID" 2>/dev/null; nginx_stop'
[ -f "$W/store/catalog.json" ] || { echo "run e2e/test-usb-boot.sh first" >&2; exit 1; }
PORT=$(free_port)
nginx_start "$W/store" "$PORT"
"$REL/image-build" usb --server "http://10.0.2.2:$PORT/" --kernel "$W/appliance/vmlinuz" \
	--initramfs "$W/appliance/initramfs.img" --default-entry normal --timeout 1 \
	--extra-args "circular.accel=tcg circular.display=curses" --out "$W/shots-usb.img" >/dev/null
cp "$W/shots-usb.img" "$W/shots-stick.img"; truncate -s 2G "$W/shots-stick.img"
rm -f "$W/shots.sock" "$W/shots.qmp" "$W/shots.log"
qemu-system-x86_64 -accel tcg -m 2048 -smp 2 -display none -vga std -no-reboot \
	-chardev "socket,id=s0,path=$W/shots.sock,server=on,wait=off" -serial chardev:s0 \
	-qmp "unix:$W/shots.qmp,server=on,wait=off" \
	-device qemu-xhci -drive "if=none,id=stick,format=raw,file=$W/shots-stick.img" \
	-device usb-storage,drive=stick,bootindex=0 -nic user,model=virtio-net-pci &
QEMU_PID=$!
# The normal entry is quiet (no kernel messages on the screen): wait for the
# menu by its colour. The menu's frames have cyan titles and borders; a
# guest's curses screen and the boot messages have none.
cyan() { python3 e2e/lib/qmp.py "$W/shots.qmp" cyan "$W/frame.png"; }
sleep 5
t0=$SECONDS
until [ "$(cyan)" -ge 50 ]; do
	[ $((SECONDS - t0)) -lt 300 ] || { echo "the menu did not show within 300 s" >&2; exit 1; }
	sleep 3
done
sleep 6
mkdir -p docs
python3 e2e/lib/qmp.py "$W/shots.qmp" screendump docs/appliance-menu.png
echo "saved docs/appliance-menu.png"
# Enter, Enter, Enter boots the latest snapshot (the details screen starts on
# "Boot"). Then screenshots every 2 s; the guest picture is the frame before
# the last one without cyan (the last one may catch the guest powering off).
for k in ret ret ret; do python3 e2e/lib/qmp.py "$W/shots.qmp" key "$k"; sleep 2; done
seen_guest=0 t0=$SECONDS
rm -f "$W/guest-last.png" "$W/guest-before.png"
while [ $((SECONDS - t0)) -lt 900 ]; do
	n=$(cyan)
	if [ "$n" -lt 50 ]; then
		seen_guest=$((seen_guest + 1))
		[ -f "$W/guest-last.png" ] && mv "$W/guest-last.png" "$W/guest-before.png"
		cp "$W/frame.png" "$W/guest-last.png"
	elif [ $seen_guest -gt 0 ]; then
		break
	fi
	sleep 2
done
[ $seen_guest -gt 1 ] || { echo "the guest never showed" >&2; exit 1; }
cp "$W/guest-before.png" docs/appliance-guest.png
echo "saved docs/appliance-guest.png"
# Back to level 1, down to "Power off", Enter.
for k in backspace backspace j ret; do python3 e2e/lib/qmp.py "$W/shots.qmp" key "$k"; sleep 1; done
wait "$QEMU_PID" || true
QEMU_PID=
