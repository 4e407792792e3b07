#!/bin/bash
# End-to-end test of desktop mode: `circular` in tmux against a real store served
# by nginx on loopback, holding the tiny guest (e2e/lib/tiny-guest.sh). Keys are
# typed with send-keys and the screen is read with capture-pane:
#   1. the menu shows the distribution, then its snapshots (latest on top);
#   2. the details screen edits a setting (keep the disk changes) and boots;
#   3. QEMU runs headless under TCG (--display none: the guest's serial console is
#      the terminal); the guest prints its marker; QEMU's command line names the
#      DATED image, not latest.img; typing `poweroff` ends the guest;
#   4. the menu is back, says the guest powered off, and the kept overlay exists;
#   5. q quits and the private mount is gone;
#   6. SIGTERM while the menu shows also unmounts and restores the terminal;
#   7. a wrong public key gives the "catalog refused" screen;
#   8. no server and an empty cache give the "no network, nothing cached" screen.
# Stops only what it started, by PID (nginx) or by its own tmux socket.
# Set SCREENSHOT_DIR to keep ANSI captures of the menu (docs/ screenshots).
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
# shellcheck source=lib/nginx.sh
source e2e/lib/nginx.sh
# shellcheck source=lib/tiny-guest.sh
source e2e/lib/tiny-guest.sh

on_fail() {
	echo "---- screen ----"
	capture
}

tiny_guest_build
# A no-op after `make build`; keeps the test runnable on its own.
cargo build --release -q -p menu -p image-build

work_dir e2e-desktop
sock=circular-e2e-$$
NGINX_RUN=$work/nginx
cleanup() {
	tmux -L "$sock" kill-server 2>/dev/null || true
	nginx_stop
	# If circular died without unmounting, its private mount is left: clear it.
	for m in $(awk '$3 == "fuse.circular" || $1 == "circular" {print $2}' /proc/mounts); do
		case "$m" in /tmp/circular-*|"${XDG_RUNTIME_DIR:-/nonexistent}"/circular-*)
			[ -n "${CIRCULAR_PID:-}" ] && [ "$m" = "$(mount_of "$CIRCULAR_PID")" ] && fusermount3 -u "$m" 2>/dev/null || true ;;
		esac
	done
}
at_exit cleanup

mount_of() { echo "${XDG_RUNTIME_DIR:-/tmp}/circular-$1"; }

capture() { tmux -L "$sock" capture-pane -p -t circular -S -300; }

# wait_for TEXT SECONDS: until TEXT is on screen.
wait_for() {
	local text=$1 secs=${2:-20} i
	for ((i = 0; i < secs * 5; i++)); do
		if capture | grep -qF -- "$text"; then return 0; fi
		sleep 0.2
	done
	fail "\"$text\" not on screen after ${secs}s"
}

keys() { tmux -L "$sock" send-keys -t circular "$@"; }

port=$(free_port)

step "store with two snapshots of the tiny guest, served by nginx on 127.0.0.1:$port"
"$bin/image-build" keygen --secret "$work/key.sec" --public "$work/key.pub" >/dev/null
for date in 2026-11-15 2026-11-22; do
	"$bin/image-build" add --store "$work/store" --distro tiny --date "$date" --title "Tiny guest" \
		--memory-mib 256 --cpus 1 --notes "busybox guest that prints a marker" \
		--key "$work/key.sec" "$TINY_GUEST_IMG" >/dev/null
done
nginx_start "$work/store" "$port"

# start_circular ARGS…: runs circular in the tmux session "circular" of our own
# tmux server, 80x25 like the Linux console; sets CIRCULAR_PID.
start_circular() {
	# A session that outlives each run keeps our tmux server up: killing the
	# last session would end the server, racing with the next new-session.
	tmux -L "$sock" has-session -t keep 2>/dev/null || tmux -L "$sock" new-session -d -s keep "sleep 3600"
	tmux -L "$sock" kill-session -t circular 2>/dev/null || true
	tmux -L "$sock" new-session -d -s circular -x 80 -y 25 \
		"$bin/circular $* ; echo CIRCULAR-EXIT-\$?; sleep 600"
	local pane i
	pane=$(tmux -L "$sock" list-panes -t circular -F '#{pane_pid}')
	for i in $(seq 50); do
		CIRCULAR_PID=$(pgrep -P "$pane" -x circular || true)
		[ -n "$CIRCULAR_PID" ] && return 0
		sleep 0.1
	done
	fail "circular did not start"
}

common="--server http://127.0.0.1:$port/ --public $work/key.pub --cache $work/cache --accel tcg --display none"

step "level 1: the distribution"
start_circular "$common"
wait_for "Choose an operating system"
wait_for "Tiny guest"
wait_for "http://127.0.0.1:$port/ reachable"
[ -n "${SCREENSHOT_DIR:-}" ] && tmux -L "$sock" capture-pane -e -N -p -t circular >"$SCREENSHOT_DIR/menu-level1.ansi"
mnt=$(mount_of "$CIRCULAR_PID")
grep -q " $mnt " /proc/mounts || fail "no blockfs mount on $mnt"

step "level 2: snapshots, newest first, latest on top"
keys Enter
wait_for "Tiny guest: snapshots, newest first"
screen=$(capture)
latest_line=$(grep -n "latest (2026-11-22)" <<<"$screen" | cut -d: -f1)
older_line=$(grep -n "  2026-11-15 " <<<"$screen" | cut -d: -f1)
[ -n "$latest_line" ] && [ -n "$older_line" ] && [ "$latest_line" -lt "$older_line" ] || fail "snapshot order"
[ -n "${SCREENSHOT_DIR:-}" ] && tmux -L "$sock" capture-pane -e -N -p -t circular >"$SCREENSHOT_DIR/menu-level2.ansi"

step "details: keep the disk changes, then boot"
keys Enter
wait_for "VM settings"
wait_for "> [ Boot ]"
keys Up Right
wait_for "> Disk changes  kept for the next boot"
[ -n "${SCREENSHOT_DIR:-}" ] && tmux -L "$sock" capture-pane -e -N -p -t circular >"$SCREENSHOT_DIR/menu-details.ansi"
keys Enter

step "the guest boots under TCG and prints its marker on the serial console"
wait_for "$TINY_GUEST_MARKER" 180
qemu=$(pgrep -P "$CIRCULAR_PID" || true)
[ -n "$qemu" ] || fail "no QEMU child of circular"
cmdline=$(tr '\0' ' ' <"/proc/$qemu/cmdline")
grep -qF "tiny/2026-11-22.img" <<<"$cmdline" || fail "QEMU does not use the dated image: $cmdline"
grep -qF "latest.img" <<<"$cmdline" && fail "QEMU uses latest.img: $cmdline"
grep -qF -- "-accel tcg" <<<"$cmdline" || fail "not TCG: $cmdline"
grep -qF "virtio-blk-pci" <<<"$cmdline" || fail "no virtio disk: $cmdline"
grep -qF "virtio-net-pci" <<<"$cmdline" || fail "no virtio NIC: $cmdline"

step "power the guest off: back in the menu"
wait_for "tiny-guest#" 30
keys poweroff Enter
wait_for "powered off after" 60
wait_for "Tiny guest · 2026-11-22 (latest)"
wait_for "of kept changes (d d deletes them)"
[ -f "$work/cache/overlays/tiny/2026-11-22.qcow2" ] || fail "no kept overlay"
kill -0 "$qemu" 2>/dev/null && fail "QEMU still runs"

step "back to the snapshots: this boot's blocks are now cached"
keys Escape
wait_for "Tiny guest: snapshots, newest first"
capture | grep -E "latest \(2026-11-22\).*(cached [1-9][0-9]*%|fully cached)" >/dev/null || fail "no cached share after the boot"
[ -n "${SCREENSHOT_DIR:-}" ] && tmux -L "$sock" capture-pane -e -N -p -t circular >"$SCREENSHOT_DIR/menu-after-boot.ansi"

step "q quits and unmounts"
keys q
wait_for "CIRCULAR-EXIT-0"
grep -q " $mnt " /proc/mounts && fail "still mounted on $mnt"
[ -e "$mnt" ] && fail "mount point $mnt left behind"

step "SIGTERM while the menu shows: unmounted, terminal restored"
start_circular "$common"
wait_for "Choose an operating system"
mnt=$(mount_of "$CIRCULAR_PID")
kill -TERM "$CIRCULAR_PID"
wait_for "CIRCULAR-EXIT-0"
grep -q " $mnt " /proc/mounts && fail "still mounted on $mnt after SIGTERM"
# A restored terminal echoes what is typed (raw mode would not).
keys "echo typed-after-exit" Enter
wait_for "typed-after-exit"

step "a wrong public key: the catalog is refused"
"$bin/image-build" keygen --secret "$work/other.sec" --public "$work/other.pub" >/dev/null
start_circular "--server http://127.0.0.1:$port/ --public $work/other.pub --cache $work/cache2 --accel tcg --display none"
wait_for "Catalog refused: its signature does not match this machine's key" 60
wait_for "r: try again    q: quit"
[ -n "${SCREENSHOT_DIR:-}" ] && tmux -L "$sock" capture-pane -e -N -p -t circular >"$SCREENSHOT_DIR/menu-refused.ansi"
keys q
wait_for "CIRCULAR-EXIT-0"

step "no server and nothing cached: a clear screen says so (after blockfs's 60 s deadline)"
closed=$((port + 1))
while (exec 3<>/dev/tcp/127.0.0.1/$closed) 2>/dev/null; do closed=$((closed + 1)); done
start_circular "--server http://127.0.0.1:$closed/ --public $work/key.pub --cache $work/cache3 --accel tcg --display none"
wait_for "No network, and nothing is cached" 120
wait_for "Plug in a network cable"
keys q
wait_for "CIRCULAR-EXIT-0"

echo "PASS: desktop mode boots the tiny guest from nginx, returns to the menu, and cleans up"
