#!/usr/bin/env bash
# End-to-end test of `image-build os` (docs/OS-IMAGES.md), with real parts only:
#   1. build a Debian image with debootstrap from the Debian mirror, twice: the bytes must match;
#   2. boot it under QEMU (TCG) on virtio-blk and on IDE: a login prompt must appear on the serial console;
#   3. make next week's snapshot with --update-from (adds openssh-server); boot it twice, log in
#      as root on the serial console: each boot must have its own machine-id and SSH host keys;
#   4. `image-build add` both to a store: the second must add far fewer new blocks than the first.
# Downloaded .deb files are cached in $BUILD/os-cache, so a rerun downloads almost nothing.
# Needs root (chroot, mounts, loop devices) and about 6 GB free under $BUILD.
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
W=$BUILD/os-e2e
CACHE=$BUILD/os-cache
BIN=$bin/image-build
BOOT_TIMEOUT=${BOOT_TIMEOUT:-420}

need_root
need_bins image-build
mkdir -p "$W" "$CACHE"
rm -f "$W"/*.img "$W"/*.log

QEMU_PID=
# Only the QEMU this script started, by its PID.
at_exit '[ -n "$QEMU_PID" ] && kill "$QEMU_PID" 2>/dev/null'

timed() { # timed LABEL CMD...: runs CMD, prints its wall time
	local label=$1 t0=$SECONDS; shift
	"$@"
	echo "   $label took $((SECONDS - t0)) s"
}

# wait_for LOG REGEX WHAT: waits for REGEX in the console log, or fails printing it.
wait_for() {
	local log=$1 re=$2 what=$3 t0=$SECONDS
	while ! grep -aEq "$re" "$log"; do
		if ! kill -0 "$QEMU_PID" 2>/dev/null; then
			tail -c 4000 "$log" >&2; fail "QEMU exited before $what"
		fi
		if (( SECONDS - t0 > BOOT_TIMEOUT )); then
			tail -c 6000 "$log" >&2; fail "no $what within $BOOT_TIMEOUT s"
		fi
		sleep 2
	done
}

stop_qemu() {
	kill "$QEMU_PID" 2>/dev/null || true; wait "$QEMU_PID" 2>/dev/null || true; QEMU_PID=
}

# boot IMAGE IF LOG: boots under TCG until "login:" shows on the serial console.
boot() {
	local image=$1 iface=$2 log=$3 t0=$SECONDS
	qemu-system-x86_64 -accel tcg -m 1024 -smp 1 -nographic -no-reboot \
		-drive "file=$image,format=raw,if=$iface,snapshot=on" -nic user,model=e1000 \
		</dev/null >"$log" 2>&1 &
	QEMU_PID=$!
	wait_for "$log" 'login:' "login prompt ($image on $iface)"
	stop_qemu
	echo "   login prompt on ttyS0 after $((SECONDS - t0)) s ($iface): $(grep -a -m1 -o '[[:alnum:]-]* login:' "$log")"
}

# first_boot IMAGE IF LOG: boots, logs in as root on ttyS0, waits for sshd, and
# sets FIRST_BOOT="keys=N ssh=STATE id=MACHINE-ID fp=HOST-KEY-FINGERPRINT".
first_boot() {
	local image=$1 iface=$2 log=$3 t0=$SECONDS fifo=$W/serial-in
	rm -f "$fifo"; mkfifo "$fifo"
	qemu-system-x86_64 -accel tcg -m 1024 -smp 1 -nographic -no-reboot \
		-drive "file=$image,format=raw,if=$iface,snapshot=on" -nic user,model=e1000 \
		<"$fifo" >"$log" 2>&1 &
	QEMU_PID=$!
	exec 7>"$fifo"
	wait_for "$log" 'login:' "login prompt ($image on $iface)"
	printf 'root\r' >&7
	wait_for "$log" 'root@[[:alnum:]-]+:' "root shell after login ($iface)"
	# Host keys are generated at first boot (slow under TCG); sshd waits for them.
	printf '%s\r' 'for i in $(seq 150); do systemctl is-active -q ssh && break; sleep 2; done; echo "RESULT keys=$(ls /etc/ssh/ssh_host_*_key | wc -l) ssh=$(systemctl is-active ssh) id=$(cat /etc/machine-id) fp=$(ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub | cut -d" " -f2)"' >&7
	wait_for "$log" 'RESULT keys=[0-9]+ ssh=[a-z]+ id=' "first-boot result ($iface)"
	exec 7>&-
	stop_qemu
	rm -f "$fifo"
	FIRST_BOOT=$(grep -aEo 'RESULT keys=[0-9]+ ssh=[a-z]+ id=[0-9a-f]* fp=[^[:space:]]*' "$log" | head -1 | sed 's/^RESULT //')
	echo "   $iface: logged in as root on ttyS0, checked after $((SECONDS - t0)) s: $FIRST_BOOT"
}

step "build the image (debootstrap, bookworm, 2G)"
timed "build 1" "$BIN" os --suite bookworm --size 2G --out "$W/a.img" --cache-dir "$CACHE"
step "build it again: the bytes must be identical"
timed "build 2" "$BIN" os --suite bookworm --size 2G --out "$W/b.img" --cache-dir "$CACHE"
if cmp "$W/a.img" "$W/b.img"; then
	echo "   reproducible: a.img and b.img are identical ($(sha256sum <"$W/a.img" | cut -c1-16)…)"
else
	fail "two builds from the same inputs differ"
fi
rm -f "$W/b.img"

step "boot it under QEMU TCG"
boot "$W/a.img" virtio "$W/boot-virtio.log"

step "next week's snapshot: --update-from, adding openssh-server"
timed "update" "$BIN" os --update-from "$W/a.img" --out "$W/w2.img" --packages openssh-server --cache-dir "$CACHE"

step "boot it twice (virtio, IDE): each first boot makes its own machine-id and SSH host keys"
first_boot "$W/w2.img" virtio "$W/boot-w2-virtio.log"; r1=$FIRST_BOOT
first_boot "$W/w2.img" ide "$W/boot-w2-ide.log"; r2=$FIRST_BOOT
for r in "$r1" "$r2"; do
	[[ $r =~ ^keys=[1-9][0-9]*\ ssh=active\ id=[0-9a-f]{32}\ fp=SHA256: ]] || fail "first boot: $r"
done
id1=${r1#* id=}; id1=${id1%% *}; id2=${r2#* id=}; id2=${id2%% *}
[ "$id1" != "$id2" ] || fail "two first boots got the same machine-id $id1"
[ "${r1#* fp=}" != "${r2#* fp=}" ] || fail "two first boots got the same SSH host key"

step "publish both to a store: the second adds far fewer new blocks"
rm -rf "$W/store" "$W/key" "$W/key.pub"
"$BIN" keygen --secret "$W/key" --public "$W/key.pub" >/dev/null
"$BIN" add --store "$W/store" --distro bookworm --date 2026-01-01 --key "$W/key" "$W/a.img" | tee "$W/add1.log"
"$BIN" add --store "$W/store" --distro bookworm --date 2026-01-08 --key "$W/key" "$W/w2.img" | tee "$W/add2.log"
# "blocks: N total, Z zero, E already in the store, M new; …"
read -r t1 z1 e1 n1 < <(sed -n 's/^blocks: \([0-9]*\) total, \([0-9]*\) zero, \([0-9]*\) already in the store, \([0-9]*\) new.*/\1 \2 \3 \4/p' "$W/add1.log")
read -r t2 z2 e2 n2 < <(sed -n 's/^blocks: \([0-9]*\) total, \([0-9]*\) zero, \([0-9]*\) already in the store, \([0-9]*\) new.*/\1 \2 \3 \4/p' "$W/add2.log")
[ -n "${n1:-}" ] && [ -n "${n2:-}" ] || fail "could not read the block counts that add printed"
echo "   week 1: $n1 new blocks of $((t1 - z1)) non-zero; week 2: $n2 new of $((t2 - z2)) non-zero ($(( 100 * e2 / (t2 - z2) ))% already in the store)"
(( n2 * 5 < n1 )) || fail "the weekly update added $n2 new blocks, not far fewer than the first image's $n1"

echo
echo "test-os-image: passed (reproducible build, boots on virtio and IDE, first-boot identity, weekly update shares blocks)"
