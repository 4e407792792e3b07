#!/bin/bash
# Builds, once, the soak test's guest (e2e/soak.sh): a raw disk whose own
# busybox init reads the whole virtio disk it booted from and prints its SHA-1 on
# the serial console, then powers off. So every byte the guest sees went through
# the disk path a person's boot uses (blockfs's mount, under QEMU's qcow2 overlay).
#
#   source e2e/lib/soak-guest.sh; soak_guest_build     sets SOAK_GUEST_IMG
#
# The disk (40 MiB): an MBR with GRUB for BIOS, one 15 MiB ext2 partition from
# 1 MiB with Debian's kernel and an initramfs (busybox-static and the six virtio
# modules the kernel needs for /dev/vda: Debian builds them as modules), then
# 24 MiB of pseudo-random bytes after the partition (seeded, so the image is the
# same on every machine). Random bytes do not compress and are never zero, so
# every one of those blocks is really fetched and really stored.
# Its console lines:
#   SOAK-GUEST-READING <sectors>          the disk is there, the read starts
#   SOAK-GUEST-SHA1 <sha1>  - rc=N        the whole disk's hash (rc 0 = every read without error)
#   SOAK-GUEST-LONGEST-MIB <s> s          the longest any 1 MiB read took (the guest's worst stall)
#   SOAK-GUEST-READ-FAILED at MiB <n>: .. a read that failed
#   SOAK-GUEST-DMESG <line>               any kernel line about a failed read
#   SOAK-GUEST-DONE                       then it powers off
# Result: $BUILD/soak-guest/soak-guest.img; rebuilt when this file changes.
# The disk is a whole number of MiB: the guest reads it 1 MiB at a time.
# Needs (make deps): apt-get, dpkg-deb, cpio, zstd, e2fsprogs, grub-pc-bin, python3, cargo.

soak_guest_build() {
	local here repo build out img stamp want
	here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
	repo=$(cd "$here/../.." && pwd)
	build=${BUILD:-$repo/build}
	out=$build/soak-guest
	img=$out/soak-guest.img
	stamp=$out/stamp
	want=$(sha1sum "$here/soak-guest.sh" | cut -d' ' -f1)
	SOAK_GUEST_IMG=$img
	if [ -f "$img" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
		return 0
	fi
	echo "soak-guest: building $img" >&2
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
		local kpkg
		kpkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
		[ -n "$kpkg" ] || { echo "soak-guest: apt-cache knows no linux-image-amd64; run apt-get update" >&2; exit 1; }
		ls "$kpkg"_*.deb >/dev/null 2>&1 || apt-get download "$kpkg" >&2
		ls busybox-static_*.deb >/dev/null 2>&1 || apt-get download busybox-static >&2
		cd "$out/work"
		# The kernel and, of its modules, only the virtio disk's chain, in load order.
		local mods="virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_blk" m
		dpkg-deb --fsys-tarfile "$out/debs/$kpkg"_*.deb |
			tar -x --wildcards './boot/vmlinuz-*' './lib/modules/*/kernel/drivers/virtio/*' \
				'./lib/modules/*/kernel/drivers/block/virtio_blk.ko'
		dpkg-deb --fsys-tarfile "$out/debs"/busybox-static_*.deb | tar -x ./bin/busybox

		mkdir -p initramfs/bin initramfs/proc initramfs/sys initramfs/dev initramfs/lib/modules
		cp bin/busybox initramfs/bin/busybox
		for m in $mods; do
			cp lib/modules/*/kernel/drivers/*/"$m".ko initramfs/lib/modules/
		done
		cat >initramfs/init <<INIT
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
mkdir -p /tmp
for m in $mods; do
	insmod /lib/modules/\$m.ko || echo "SOAK-GUEST: insmod \$m failed"
done
i=0
while [ ! -b /dev/vda ] && [ \$i -lt 600 ]; do sleep 0.1; i=\$((i + 1)); done
sectors=\$(cat /sys/block/vda/size 2>/dev/null)
mib=\$((\${sectors:-0} / 2048))
echo "SOAK-GUEST-READING \$sectors sectors"
# MiB by MiB, each one's end time noted (/proc/uptime, 10 ms): the longest a MiB
# took is the longest the guest waited on its disk.
start=\$(cut -d' ' -f1 /proc/uptime)
sum=\$(
	i=0
	while [ \$i -lt \$mib ]; do
		if ! dd if=/dev/vda bs=1M skip=\$i count=1 2>/tmp/dd.err; then
			echo "SOAK-GUEST-READ-FAILED at MiB \$i: \$(cat /tmp/dd.err)" >/dev/console
			touch /tmp/failed
		fi
		cut -d' ' -f1 /proc/uptime >>/tmp/times
		i=\$((i + 1))
	done | sha1sum
)
rc=0
[ -e /tmp/failed ] && rc=1
[ \$mib -gt 0 ] || rc=2
echo "SOAK-GUEST-SHA1 \$sum rc=\$rc"
echo "SOAK-GUEST-LONGEST-MIB \$(awk -v p=\$start '{ g = \$1 - p; if (g > m) m = g; p = \$1 } END { printf "%.2f", m }' /tmp/times) s"
dmesg | grep -E 'I/O error|blk_update_request|Buffer I/O|critical medium' | sed 's/^/SOAK-GUEST-DMESG /'
echo "SOAK-GUEST-DONE"
poweroff -f
sleep 1000
INIT
		chmod 755 initramfs/init
		(cd initramfs && find . | cpio -o -H newc --quiet) | zstd -q -19 >initrd.img

		mkdir -p root/boot/grub
		cp boot/vmlinuz-* root/boot/vmlinuz
		cp initrd.img root/boot/initrd.img
		# loglevel=4: the kernel's errors (KERN_ERR, "I/O error") reach the console.
		cat >root/boot/grub/grub.cfg <<'CFG'
serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
set timeout=0
menuentry "Circular soak guest" {
	linux /boot/vmlinuz console=ttyS0,115200 loglevel=4 panic=-1
	initrd /boot/initrd.img
}
CFG
		local size_mib=40 start=2048 part_mib=15
		rm -f disk.img
		truncate -s ${size_mib}M disk.img
		mke2fs -q -t ext2 -L SOAKGUEST -d root -E offset=$((start * 512)) disk.img $((part_mib * 1024))k
		# Seeded pseudo-random bytes from 16 MiB to the end (outside the partition).
		python3 - disk.img $((16 << 20)) $(((size_mib - 16) << 20)) <<'PY'
import random, sys
path, at, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with open(path, "r+b") as f:
    f.seek(at)
    f.write(random.Random(15).randbytes(n))
PY
		grub-mkimage -O i386-pc -o core.img -p '(hd0,msdos1)/boot/grub' \
			biosdisk part_msdos ext2 normal linux serial terminal echo test configfile
		"$ib" disk --core core.img disk.img >&2
		mv disk.img "$img"
		echo "$want" >"$stamp"
		rm -rf "$out/work"
	)
	# Not `( ... ) || return 1`: a `||` turns off `set -e` inside the subshell, and a
	# failed step would go unnoticed. A caller under `set -e` stops here on a failure.
	local rc=$?
	[ "$rc" -eq 0 ] || return "$rc"
	echo "soak-guest: built $img" >&2
}
