#!/bin/bash
# Builds, once, a tiny bootable raw disk image for tests that boot a real guest:
# an MBR disk with GRUB for BIOS, Debian's kernel and a busybox initramfs whose init
# prints CIRCULAR-TINY-GUEST-OK on the serial console, then waits for `poweroff`.
#
#   bash e2e/lib/tiny-guest.sh          prints the image's path (builds it if needed)
#   source e2e/lib/tiny-guest.sh; tiny_guest_build   sets TINY_GUEST_IMG
#
# Result: $BUILD/tiny-guest/tiny-guest.img (BUILD defaults to <repo>/build), 32 MiB
# sparse, about 12 MB of data. Boots under `qemu-system-x86_64 -accel tcg -nographic`.
# Nothing touches the host's /boot: the kernel comes from Debian's package, unpacked.
# No loop device and no root-only step: mke2fs -d fills the partition in the file, and
# `image-build disk` writes the MBR, GRUB's boot.img and core.img into the file, as
# grub-bios-setup would if it took plain files (the writer `image-build os` and
# `image-build usb` use; image-build/src/disk/). IMAGE_BUILD names the image-build
# binary to use; by default it is built (cargo build --release -p image-build).
#
# Needs (make deps): apt-get, dpkg-deb, busybox-static's package, cpio, zstd,
# e2fsprogs, grub-pc-bin, and cargo.

TINY_GUEST_MARKER=CIRCULAR-TINY-GUEST-OK

tiny_guest_build() {
	local here repo build out img stamp want
	here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
	repo=$(cd "$here/../.." && pwd)
	build=${BUILD:-$repo/build}
	out=$build/tiny-guest
	img=$out/tiny-guest.img
	stamp=$out/stamp
	# Rebuild when this script changes: the stamp holds its hash.
	want=$(sha1sum "$here/tiny-guest.sh" | cut -d' ' -f1)
	TINY_GUEST_IMG=$img
	if [ -f "$img" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
		return 0
	fi
	echo "tiny-guest: building $img" >&2
	(
		set -euo pipefail
		local ib=${IMAGE_BUILD:-}
		if [ -z "$ib" ]; then
			cargo build --release -q -p image-build --manifest-path "$repo/Cargo.toml"
			ib=${CARGO_TARGET_DIR:-$repo/target}/release/image-build
		fi
		rm -rf "$out/work"
		mkdir -p "$out/debs" "$out/work"
		cd "$out/debs"
		# The kernel package is the current dependency of linux-image-amd64, so this
		# follows Debian's point releases without naming a version here.
		local kpkg
		kpkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
		[ -n "$kpkg" ] || { echo "tiny-guest: apt-cache knows no linux-image-amd64; run apt-get update" >&2; exit 1; }
		ls "$kpkg"_*.deb >/dev/null 2>&1 || apt-get download "$kpkg" >&2
		ls busybox-static_*.deb >/dev/null 2>&1 || apt-get download busybox-static >&2
		cd "$out/work"
		# Only the kernel: the package's modules are 400 MB unpacked and unneeded here.
		dpkg-deb --fsys-tarfile "$out/debs/$kpkg"_*.deb | tar -x --wildcards './boot/vmlinuz-*'
		dpkg-deb --fsys-tarfile "$out/debs"/busybox-static_*.deb | tar -x ./bin/busybox

		# The initramfs: busybox and an init that prints the marker and waits.
		mkdir -p initramfs/bin initramfs/proc initramfs/sys initramfs/dev
		cp bin/busybox initramfs/bin/busybox
		cat >initramfs/init <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
# Reads commands from one terminal; PID 1 must never exit, so the loop never ends.
serve() {
	echo "CIRCULAR-TINY-GUEST-OK"
	echo "tiny guest: type 'poweroff' (or 'reboot') and Enter"
	while true; do
		printf 'tiny-guest# '
		if ! read -r cmd; then sleep 1; continue; fi
		case "$cmd" in
		poweroff|halt) echo "tiny guest: powering off"; sync; poweroff -f ;;
		reboot) echo "tiny guest: rebooting"; sync; reboot -f ;;
		"") ;;
		*) sh -c "$cmd" ;;
		esac
	done
}
# The VGA console too, for curses and full-screen displays.
if [ -c /dev/tty1 ]; then serve </dev/tty1 >/dev/tty1 2>&1 & fi
serve </dev/console >/dev/console 2>&1
INIT
		chmod 755 initramfs/init
		(cd initramfs && find . | cpio -o -H newc --quiet) | zstd -q -19 >initrd.img

		# The partition's files: kernel, initramfs, GRUB's config.
		mkdir -p root/boot/grub
		cp boot/vmlinuz-* root/boot/vmlinuz
		cp initrd.img root/boot/initrd.img
		cat >root/boot/grub/grub.cfg <<'CFG'
serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
set timeout=0
menuentry "Circular tiny guest" {
	linux /boot/vmlinuz console=tty0 console=ttyS0,115200 loglevel=3 panic=-1
	initrd /boot/initrd.img
}
CFG

		# The disk: 32 MiB, one ext2 partition from 1 MiB (sector 2048) to the end.
		local size_mib=32 start=2048
		rm -f disk.img
		truncate -s ${size_mib}M disk.img
		local part_sectors=$(( size_mib * 2048 - start ))
		mke2fs -q -t ext2 -L TINYGUEST -d root -E offset=$(( start * 512 )) disk.img $(( part_sectors / 2 ))k

		# GRUB for BIOS: core.img knows its prefix; normal mode reads grub.cfg.
		grub-mkimage -O i386-pc -o core.img -p '(hd0,msdos1)/boot/grub' \
			biosdisk part_msdos ext2 normal linux serial terminal echo test configfile
		# The MBR: that one partition (type 83, bootable) with GRUB's boot.img, and
		# core.img in the gap before it, its block list patched. It checks that
		# core.img fits the gap.
		"$ib" disk --core core.img disk.img >&2
		mv disk.img "$img"
		echo "$want" >"$stamp"
		rm -rf "$out/work"
	) || return 1
	echo "tiny-guest: built $img ($(du -h "$img" | cut -f1) used)" >&2
}

# Run as a script: build, then print the path.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	set -e
	tiny_guest_build
	echo "$TINY_GUEST_IMG"
fi
