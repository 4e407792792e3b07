#!/usr/bin/env bash
# End-to-end test of the appliance: the USB image boots in QEMU (TCG) as a
# real USB stick (qemu-xhci + usb-storage).
#   boot 1, SeaBIOS, fresh stick, store served by nginx on the host:
#     DHCP lease from QEMU's user network, cache partition found and grown,
#     blockfs mounts the store (10.0.2.2), the ratatui menu shows on the
#     serial console; the test picks the tiny guest snapshot with keys, the
#     nested QEMU prints the guest's marker, the guest powers off, the menu is
#     back; "Power off" in the menu powers the appliance off cleanly.
#   Before booting: `sbverify --list` on the image's BOOTX64.EFI, grubx64.efi and
#     kernel shows Microsoft's and Debian's signers; the kernel is Debian's byte for byte;
#     the GPU firmware is in the cache partition's /firmware, and boots 1 and 2 log that
#     PID 1 pointed the kernel at it before loading amdgpu, i915, nouveau and radeon.
#   boot 2, OVMF with Secure Boot enforced (OVMF_CODE_4M.secboot.fd, Microsoft's
#     keys enrolled in OVMF_VARS_4M.ms.fd; q35 with SMM), same stick, nginx
#     stopped: shim, signed GRUB and the signed kernel start; the serial log
#     says Secure Boot is on and lockdown is integrity, and so does the menu's
#     status line; under lockdown the signed modules load (fuse, kvm), DHCP
#     works, blockfs mounts through FUSE, the snapshot boots from the cache in
#     the nested QEMU, the marker appears again, power off from the menu.
#   boot 3, plain OVMF (Secure Boot off), same stick, a Cirrus VGA (no KMS driver on the
#     stick takes it, so the screen is efifb's), GRUB's normal entry: the menu is on the
#     screen and is driven by keys sent to the appliance; the snapshot boots and its pattern
#     fills the screen; after its power-off the menu is back on the screen (its header row
#     pixel for pixel as before the boot); power off from the menu. PID 1's log on the stick
#     says the presenter drew on EFI VGA.
#   After boots 1 to 3, each powered off from the menu, e2fsck -n finds the stick's cache
#   filesystem clean.
#   Boots 1 and 2 show the tiny guest on the appliance's screen through the presenter on
#   bochs-drm (KMS), see guest_on_screen.
#   boot 4, the Secure Boot firmware with today's unsigned grub-mkimage
#     BOOTX64.EFI put in place of shim: the firmware refuses it ("Access
#     Denied" on the serial console) and GRUB never starts.
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
[ -e "$BUILD/apt/apt.conf" ] || bash "$repo/setup/apt.sh" "$BUILD"
APT_CONFIG=$BUILD/apt/apt.conf "$REL/image-build" initramfs --public "$W/keys/public.pem" --bins "$REL" \
	--cache "$BUILD/debs" --out "$W/appliance" --level "${ZSTD_LEVEL:-12}" | tee "$W/initramfs-report.txt"

log "tiny guest: Debian kernel + busybox initramfs that prints $MARKER, draws a pattern, echoes keys, powers off"
G=$W/guest
rm -rf "$G"; mkdir -p "$G/root/bin" "$G/root/proc" "$G/root/dev" "$G/root/sys" "$G/root/mod"
cp /usr/bin/busybox "$G/root/bin/busybox"
# bochs-drm (the guest's std VGA, with KMS and fbdev emulation) and what it needs, in the
# order modprobe would load them;
KVER=$(sed -n 's/^initramfs: kernel .* (\(.*\))$/\1/p' "$W/initramfs-report.txt")
KROOT=$(ls -d "$BUILD"/debs/linux-image-"$KVER")
# xHCI, usbhid and evdev for the USB tablet that the presenter's pointer moves.
for m in bochs xhci_pci usbhid hid_generic evdev; do
	/sbin/modprobe --show-depends -d "$KROOT" -S "$KVER" "$m" | sed -n 's/^insmod \([^ ]*\).*/\1/p'
done | awk '!seen[$0]++' >"$G/modules"
[ -s "$G/modules" ] || fail "modprobe found no bochs module under $KROOT"
while read -r m; do
	case $m in
	*.ko) cp "$m" "$G/root/mod/" ;;
	*.ko.xz) xz -dc "$m" >"$G/root/mod/$(basename "${m%.xz}")" ;;
	*) fail "unknown module compression: $m" ;;
	esac
	basename "${m%.xz}" >>"$G/root/mod/order"
done <"$G/modules"
# The pattern: 1024x768, x8r8g8b8 (bytes B G R X), quadrants red, green / blue, white.
python3 - "$G/root/quadrants.raw" <<'PY'
import sys
w, h = 1024, 768
row = lambda left, right: bytes(left) * (w // 2) + bytes(right) * (w // 2)
top, bottom = row((0, 0, 255, 0), (0, 255, 0, 0)), row((255, 0, 0, 0), (255, 255, 255, 0))
open(sys.argv[1], "wb").write(top * (h // 2) + bottom * (h // 2))
PY
cat >"$G/root/init" <<INIT
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t devtmpfs dev /dev
mount -t sysfs sys /sys
echo "$MARKER: hello from the tiny guest"
for m in \$(cat /mod/order); do insmod /mod/\$m || echo "$MARKER: insmod \$m failed"; done
i=0; while [ ! -e /dev/fb0 ] && [ \$i -lt 50 ]; do sleep 0.2; i=\$((i + 1)); done
if [ -e /dev/fb0 ]; then
	# fbcon off, so no text or cursor draws over the pattern.
	for v in /sys/class/vtconsole/vtcon*; do grep -q 'frame buffer' \$v/name && echo 0 >\$v/bind; done
	f=/sys/class/graphics/fb0
	# Keys and the tablet are read from before the pattern shows, so that what the test
	# sends once it sees the pattern is not lost. fd 3 keeps the VT open: a VT's settings
	# go back to the defaults at its last close, and keys typed while it is closed are lost.
	exec 3</dev/tty0
	stty -icanon -echo min 1 <&3
	# The tablet's absolute position in guest pixels (input_event: 16 bytes of time, type,
	# code, value; EV_ABS 3, ABS_X 0, ABS_Y 1, EV_SYN 0), one line per move.
	i=0; while ! grep -qs Tablet /sys/class/input/event*/device/name && [ \$i -lt 50 ]; do sleep 0.2; i=\$((i + 1)); done
	for e in /sys/class/input/event*; do grep -qs Tablet \$e/device/name && tablet=/dev/input/\${e##*/}; done
	[ -n "\$tablet" ] || echo "$MARKER: no tablet"
	# The loop opens the device once: a reader's queued events go when it closes the device.
	[ -n "\$tablet" ] && while :; do dd bs=24 count=1 2>/dev/null | od -A n -t d2 -w24 -v; done <\$tablet |
		awk -v m="$MARKER" '\$9 == 3 && \$10 == 0 { x = \$11 } \$9 == 3 && \$10 == 1 { y = \$11 }
			\$9 == 0 && x != "" && y != "" { printf "%s: tablet %d %d\\n", m, int(x * 1024 / 32768), int(y * 768 / 32768); fflush() }' &
	echo "$MARKER: fb0 \$(cat \$f/virtual_size) \$(cat \$f/bits_per_pixel) bpp stride \$(cat \$f/stride)"
	cat /quadrants.raw >/dev/fb0
	typed=\$(timeout 300 head -c 3 <&3)
	echo "$MARKER: typed '\$typed'"
else
	echo "$MARKER: no framebuffer"
	echo "$MARKER: hello from the tiny guest" >/dev/tty0
fi
sleep 4
poweroff -f
INIT
chmod +x "$G/root/init"
(cd "$G/root" && find . | cpio -o -H newc --quiet | zstd -q -19 >"$G/initrd.img")
"$REL/image-build" usb --server http://guest.invalid/ --kernel "$W/appliance/vmlinuz" --initramfs "$G/initrd.img" \
	--default-entry serial --timeout 0 --cache-mib 8 --extra-args "quiet panic=-1 video=1024x768" --out "$G/disk.img" >/dev/null
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

log "the signed UEFI chain on the image (sbverify --list)"
ESP="$W/circular-usb.img@@$(($(sfdisk --dump "$W/circular-usb.img" | sed -n 's/.*img1 : start= *\([0-9]*\),.*/\1/p') * 512))"
E=$W/esp
rm -rf "$E"; mkdir -p "$E"
for f in EFI/BOOT/BOOTX64.EFI EFI/BOOT/grubx64.efi EFI/BOOT/mmx64.efi EFI/debian/grub.cfg boot/vmlinuz; do
	mcopy -i "$ESP" "::/$f" "$E/$(basename "$f")" || fail "$f is not on the image's ESP"
done
signers() { sbverify --list "$1" 2>/dev/null | tee "$E/$(basename "$1").signers"; }
signers "$E/BOOTX64.EFI" >/dev/null
expect 'issuer: .*CN=Microsoft Corporation UEFI CA 2011' "$E/BOOTX64.EFI.signers"
expect 'issuer: .*CN=Microsoft UEFI CA 2023' "$E/BOOTX64.EFI.signers"
signers "$E/grubx64.efi" >/dev/null
expect 'subject: /CN=Debian Secure Boot Signer .* - grub2' "$E/grubx64.efi.signers"
signers "$E/vmlinuz" >/dev/null
expect 'subject: /CN=Debian Secure Boot Signer .* - linux' "$E/vmlinuz.signers"
for f in BOOTX64.EFI grubx64.efi vmlinuz; do
	sed -n "s|^ *- subject: .*CN=\\(.*\\)|   $f: certificate \\1|p" "$E/$f.signers"
done
cmp "$E/vmlinuz" "$KROOT/boot/vmlinuz-$KVER" ||
	fail "the kernel on the stick is not Debian's signed vmlinuz byte for byte"
cmp "$E/grub.cfg" "$W/circular-usb.parts/grub.cfg" || fail "EFI/debian/grub.cfg is not the stick's menu"
# The GPU firmware that `image-build initramfs` collected is on the cache partition (p2), every file.
fw_files=$(sed -n 's/^  GPU firmware .* in \([0-9]*\) files.*/\1/p' "$W/initramfs-report.txt")
[ "${fw_files:-0}" -gt 100 ] || fail "image-build initramfs collected no GPU firmware (report: $W/initramfs-report.txt)"
P2=$(($(sfdisk --dump "$W/circular-usb.img" | sed -n 's/.*img2 : start= *\([0-9]*\),.*/\1/p') * 512))
rm -rf "$W/p2-firmware"; mkdir -p "$W/p2-firmware"
debugfs -R "rdump /firmware $W/p2-firmware" "$W/circular-usb.img?offset=$P2" 2>/dev/null
on_p2=$(find "$W/p2-firmware" -name '*.xz' | wc -l)
[ "$on_p2" -eq "$fw_files" ] || fail "the cache partition's /firmware has $on_p2 files, the initramfs build collected $fw_files"
log "GPU firmware on the cache partition: $on_p2 files"

# Secure Boot variables for boot 2 and 4: Debian's OVMF_VARS_4M.ms.fd (Microsoft's keys,
# Secure Boot on) with the Microsoft UEFI CA 2023 added to db. Bookworm's OVMF (edk2
# 2022.11) accepts an image only when *every* Authenticode signature on it chains to db, and
# its db holds only the 2011 CA, so it refuses Debian's dual-signed shim ("Access Denied";
# the 2011 signature alone passes). PCs get the 2023 CA in db by firmware or OS updates;
# this firmware is given it the same way, as an authenticated db entry. The CA certificate
# is taken from shim's own 2023 signature (no download); virt-fw-vars (PyPI virt-firmware,
# not packaged in bookworm) writes it into a copy of the variable store.
SB_VARS=$W/OVMF_VARS_4M.ms+2023.fd
if [ ! -s "$SB_VARS" ]; then
	log "OVMF variables with Microsoft's 2011 and 2023 UEFI CAs in db"
	[ -x "$BUILD/virt-firmware/bin/virt-fw-vars" ] || {
		python3 -m venv "$BUILD/virt-firmware"
		"$BUILD/virt-firmware/bin/pip" install -q virt-firmware
	}
	python3 - "$W/shim-2023.p7" <<'PY'
import struct, sys
d = open("/usr/lib/shim/shimx64.efi.signed", "rb").read()
pe = struct.unpack_from("<I", d, 0x3C)[0]
dirs = pe + 24 + (112 if struct.unpack_from("<H", d, pe + 24)[0] == 0x20B else 96)
va, size = struct.unpack_from("<II", d, dirs + 4 * 8)  # the security directory
sigs, o = [], va
while o < va + size:  # WIN_CERTIFICATE entries, 8-byte aligned
    n = struct.unpack_from("<I", d, o)[0]
    sigs.append(d[o + 8 : o + n])
    o += (n + 7) & ~7
open(sys.argv[1], "wb").write(sigs[1])
PY
	openssl pkcs7 -inform DER -in "$W/shim-2023.p7" -print_certs |
		awk '/^subject=.*CN ?= ?Microsoft UEFI CA 2023$/ {p = 1} p && /BEGIN/ {q = 1} q {print} q && /END/ {exit}' >"$W/ms-uefi-ca-2023.pem"
	openssl x509 -in "$W/ms-uefi-ca-2023.pem" -noout -subject | grep -q 'Microsoft UEFI CA 2023' ||
		fail "could not take the Microsoft UEFI CA 2023 from shim's signature"
	"$BUILD/virt-firmware/bin/virt-fw-vars" -i /usr/share/OVMF/OVMF_VARS_4M.ms.fd -o "$SB_VARS.tmp" \
		--add-db 77fa9abd-0359-4d32-bd60-28f4e78f784b "$W/ms-uefi-ca-2023.pem" >/dev/null 2>&1
	mv "$SB_VARS.tmp" "$SB_VARS"
fi

# A 2 GiB "stick": the image is much smaller, so first boot must grow p2.
STICK=$W/stick.img
cp "$W/circular-usb.img" "$STICK"
truncate -s 2G "$STICK"

# boot FIRMWARE NAME STEPS...: seabios, ovmf (Secure Boot off), or secboot (OVMF
# enforcing Secure Boot with Microsoft's keys: it needs SMM, so q35, and the flash
# writable only from SMM). The disk is $STICK; with BOOT_END=kill the VM is stopped
# after the last step instead of waiting for it to power off.
boot() {
	local fw=$1 name=$2; shift 2
	local sock=$W/$name.sock fwargs=()
	rm -f "$sock" "$W/$name.log"
	case $fw in
	ovmf)
		cp /usr/share/OVMF/OVMF_VARS_4M.fd "$W/$name.vars"
		fwargs=(-drive if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd
			-drive "if=pflash,format=raw,file=$W/$name.vars") ;;
	secboot)
		cp "$SB_VARS" "$W/$name.vars"
		fwargs=(-machine q35,smm=on -global driver=cfi.pflash01,property=secure,value=on
			-drive if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.secboot.fd
			-drive "if=pflash,format=raw,unit=1,file=$W/$name.vars") ;;
	esac
	qemu-system-x86_64 -accel tcg -m 2048 -smp 2 -display none -vga "${VGA:-std}" -no-reboot \
		"${fwargs[@]}" \
		-chardev "socket,id=s0,path=$sock,server=on,wait=off" -serial chardev:s0 \
		-qmp "unix:$W/$name.qmp,server=on,wait=off" \
		-device qemu-xhci -drive "if=none,id=stick,format=raw,file=${DISK:-$STICK}" \
		-device usb-storage,drive=stick,bootindex=0 -device usb-tablet \
		-nic user,model=virtio-net-pci &
	QEMU_PID=$!
	local t0=$SECONDS rc=0
	# @QMP@ and @SHOT@ in a step: this boot's QMP socket, and a screenshot's name for it.
	local steps=("${@//@QMP@/$W/$name.qmp}")
	steps=("${steps[@]//@SHOT@/$W/$name}")
	python3 e2e/lib/serial_expect.py "$sock" "$W/$name.log" "${steps[@]}" || rc=$?
	if [ $rc -ne 0 ]; then
		log "$name FAILED after $((SECONDS - t0)) s; serial log: $W/$name.log"
		kill "$QEMU_PID" 2>/dev/null || true
		wait "$QEMU_PID" 2>/dev/null || true
		QEMU_PID=
		return 1
	fi
	[ "${BOOT_END:-}" = kill ] && kill "$QEMU_PID"
	wait "$QEMU_PID" || true
	QEMU_PID=
	log "$name passed in $((SECONDS - t0)) s"
}

# The guest on the appliance's screen (issue 11): the presenter draws the tiny guest's
# pattern full screen (checked in QMP screendumps, pixel by pixel), Ctrl+Alt+Esc leaves the
# guest running and takes the pattern off the screen, Enter in the menu brings it back,
# an absolute pointer move on the appliance's screen lands on the guest pixel shown there
# (the guest prints its USB tablet's position), and keys sent to the appliance reach the
# guest, which prints them on its serial console (copied to the menu's serial line). After
# the power-off the pattern is gone.
QMP="python3 e2e/lib/qmp.py @QMP@"
guest_on_screen=(
	"expect:300:$MARKER: fb0 1024,768 32 bpp stride 4096"
	"run:$QMP quadrants 180 @SHOT@-guest.png"
	"run:$QMP chord ctrl alt esc"
	"screen:60:The VM is still running, off screen"
	"run:$QMP no-quadrants 30 @SHOT@-left.png"
	"send:\r"
	"run:$QMP quadrants 120 @SHOT@-back.png"
	"run:$QMP point-at 256 576 1024 768"
	"expect:60:$MARKER: tablet 25[3-9] 57[3-9]"
	"run:$QMP key g f x"
	"expect:120:$MARKER: typed 'gfx'"
)

# The menu (crate `menu`, in circular-menu) draws full screen on the serial
# line at 80x24; `screen:` steps match what a terminal would show. Keys: Enter
# opens and boots (the details screen starts on "Boot"), Backspace goes back,
# j moves down. Before it powers off, the menu must say the snapshot is fully
# cached: blockfs's background fill fetches the blocks the boot did not read once
# the reads are quiet, and boot 2 boots the snapshot offline from them.
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
	"expect:900:$MARKER: hello"
	"${guest_on_screen[@]}"
	"screen:120:powered off after"
	"run:$QMP no-quadrants 30 @SHOT@-after.png"
	"send:\x7f"
	"screen:30:snapshots, newest first"
	"send:\x7f"
	"screen:30:Choose an operating system"
	"screen:600:Tiny test guest +latest 2026-11-20 +fully cached, offline ok"
	"send:j"
	"screen:30:> Power off"
	"send:\r"
	"expect:60:powering off"
	"eof:60"
)

# After a power-off from the menu PID 1 has unmounted the cache: its filesystem is clean.
# e2fsck -n alone would not say so: it exits 0 for a filesystem still mounted (it skips the
# journal and calls wrong free counts no error), so the journal must need no recovery and
# e2fsck must have nothing to fix, not even a count.
cache_is_clean() {
	e2fsck -fn "$STICK?offset=$P2" >"$W/$1-fsck.txt" 2>&1 ||
		fail "after $1's power-off e2fsck finds errors in the stick's cache filesystem ($W/$1-fsck.txt)"
	if grep -qE 'Fix\? no|skipping journal recovery' "$W/$1-fsck.txt" ||
		dumpe2fs -h "$STICK?offset=$P2" 2>/dev/null | grep -q needs_recovery; then
		fail "after $1's power-off the stick's cache filesystem was not unmounted cleanly ($W/$1-fsck.txt)"
	fi
	log "$1: the cache filesystem is clean after the power-off"
}

log "boot 1: SeaBIOS, fresh stick, store online"
boot seabios boot1 \
	"expect:120:Circular appliance starting" \
	"expect:120:partition /dev/sd[a-z]2 grown" \
	"expect:300:growing the filesystem" \
	"expect:120:firmware: /cache/firmware \\($fw_files files, [0-9]+ KiB\\) for amdgpu i915 nouveau radeon" \
	"expect:120:eth0: 10\.0\.2\.15/24" \
	"expect:120:store mounted" \
	"expect:120:display: presenter; /dev/fb0 is bochs-drmdrmfb, [0-9]+,[0-9]+ at 32 bpp" \
	"${choose_and_boot[@]}"

expect 'boot mode: BIOS' "$W/boot1.log"
cache_is_clean boot1
# The std VGA under SeaBIOS has no firmware framebuffer: the screen was bochs-drm's (KMS).
expect 'Initialized bochs-drm' "$W/boot1.log"

nginx_stop
log "boot 2: OVMF with Secure Boot enforced, same stick, store offline (nginx stopped)"
boot secboot boot2 \
	"expect:300:Kernel is locked down from EFI Secure Boot" \
	"expect:60:secureboot: Secure boot enabled" \
	"expect:120:Circular appliance starting" \
	"expect:120:boot mode: UEFI Secure Boot, lockdown integrity" \
	"expect:120:cache: CIRCULAR is" \
	"expect:120:firmware: /cache/firmware \\($fw_files files" \
	"expect:120:eth0: 10\.0\.2\.15/24" \
	"expect:120:store mounted" \
	"expect:120:display: presenter; /dev/fb0 is bochs-drmdrmfb" \
	"screen:120:TCG · UEFI Secure Boot, lockdown integrity" \
	"${choose_and_boot[@]}"
cache_is_clean boot2
if grep -aq "growing the filesystem" "$W/boot2.log"; then
	fail "boot 2 grew the cache again: the first grow did not stick"
fi
# Under lockdown only modules with Debian's signature load; PID 1 logs any it could not
# load (finit_module: EKEYREJECTED …), and the kernel logs what lockdown stopped. The one
# expected line is the kernel's own "hibernation is restricted" at boot.
if grep -aE 'finit_module: (EKEYREJECTED|EPERM|EACCES)|Lockdown: .*(restricted|denied)' "$W/boot2.log" |
	grep -v 'hibernation is restricted'; then
	fail "lockdown refused something the appliance did (lines above; $W/boot2.log)"
fi
# fuse (FUSE mount), the NIC (DHCP) and QEMU (the marker) were proven by the steps above.
if grep -aE 'modules: .*' "$W/boot2.log" | head -1 | grep -qwE 'kvm_(amd|intel)'; then
	log "under lockdown: Debian's signed modules (kvm included) loaded; DHCP, FUSE mount, nested QEMU worked"
else
	log "under lockdown: DHCP, FUSE mount, nested QEMU worked (no kvm module: this vCPU has no VT-x/AMD-V)"
fi

log "boot 3: plain OVMF, a Cirrus VGA (no driver on the stick takes it: efifb), GRUB's normal entry (the menu on the screen)"
# This boot the stick's GRUB starts its normal entry: the menu on the screen, kernel messages
# quiet. The test drives it with keys sent to the appliance and reads it in screendumps only.
sed 's/^set default=.*/set default=normal/' "$W/circular-usb.parts/grub.cfg" >"$W/grub-normal.cfg"
grep -q '^set default=normal$' "$W/grub-normal.cfg" || fail "grub.cfg has no 'set default=' line to change"
mcopy -o -i "$STICK@@${ESP##*@@}" "$W/grub-normal.cfg" ::/EFI/debian/grub.cfg
VGA=cirrus boot ovmf boot3 \
	"run:$QMP menu 400 @SHOT@-menu.ppm" \
	"run:$QMP key ret" "sleep:3" "run:$QMP key ret" "sleep:3" "run:$QMP key ret" \
	"run:$QMP quadrants 900 @SHOT@-guest.png" \
	"run:$QMP key g f x" \
	"run:$QMP menu 300 @SHOT@-after.ppm @SHOT@-menu.ppm" \
	"run:$QMP key backspace" "sleep:3" "run:$QMP key backspace" "sleep:3" \
	"run:$QMP key j" "sleep:3" "run:$QMP key ret" \
	"eof:120"
cache_is_clean boot3
# What PID 1 logged on the stick (the screen had its messages; the serial line was quiet).
debugfs -R 'cat /log/init.log' "$STICK?offset=$P2" 2>/dev/null >"$W/boot3-init.log"
grep -a 'display: ' "$W/boot3-init.log" | tail -1 | tee "$W/boot3-display.txt"
expect 'display: presenter; /dev/fb0 is EFI VGA' "$W/boot3-display.txt"

log "boot 4: Secure Boot firmware, today's unsigned grub-mkimage BOOTX64.EFI"
DISK=$W/unsigned.img
cp "$W/circular-usb.img" "$DISK"
UNSIGNED_ESP="$DISK@@${ESP##*@@}"
grub-mkimage -O x86_64-efi -p /boot/grub -o "$W/unsigned-BOOTX64.EFI" part_msdos fat normal linux configfile search
mcopy -o -i "$UNSIGNED_ESP" "$W/unsigned-BOOTX64.EFI" ::/EFI/BOOT/BOOTX64.EFI
# OVMF's boot manager prints the refusal on its console (the serial line):
#   BdsDxe: failed to load Boot0001 "UEFI QEMU USB HARDDRIVE ..." from PciRoot(...): Access Denied
DISK=$DISK BOOT_END=kill boot secboot boot4 \
	"expect:300:BdsDxe: failed to load Boot[0-9A-F]+ [^\r\n]*USB[^\r\n]*: Access Denied"
if grep -aq "GNU GRUB\|Loading Linux" "$W/boot4.log"; then
	fail "the firmware started the unsigned GRUB under Secure Boot"
fi
rm -f "$DISK"
log "test-usb-boot: PASS"
