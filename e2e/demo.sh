#!/bin/bash
# `make demo`: builds (once, then reuses) a signed demo store under build/demo,
# serves it with nginx on 127.0.0.1:8931, and starts desktop mode on it. Without
# a terminal (or with DEMO_MOUNT_ONLY=1) it mounts the store, shows what is
# there, and says what to do next.
#
# The store holds three distributions:
#   tiny      a tiny bootable guest (Debian's kernel + busybox) that boots in
#             seconds even without KVM, as two weekly snapshots;
#   bookworm  a real Debian 12 image built with `image-build os`: week 1 from
#             scratch, week 2 upgraded in place from it (e2e/lib/weekly-images.sh);
#   memtest   Debian's memtest86+ ISO, untouched, as a CD-ROM (BIOS and UEFI),
#             with its SHA-256 recorded as its source.
# and, with DEMO_LIVE=1 (root), a fourth:
#   debian-live  a Debian 12 console live ISO built once with Debian's live-build
#             (e2e/lib/live-iso.sh; cached in build/demo/live), as a CD-ROM, with
#             its SHA-256 and its login hint (live-config's user "user", password
#             "live"). Its first publication also boots it once from the lazy mount
#             (e2e/test-live-iso.sh) and keeps the figure: MB fetched to reach login.
# Building the Debian weeks takes a few minutes once (needs root and Debian's
# mirror); later runs reuse build/demo/os and the store when it verifies.
# Without DEMO_LIVE=1 no live ISO is built; a store that already holds one keeps it.
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
# shellcheck source=lib/nginx.sh
source e2e/lib/nginx.sh
# shellcheck source=lib/tiny-guest.sh
source e2e/lib/tiny-guest.sh
# shellcheck source=lib/weekly-images.sh
source e2e/lib/weekly-images.sh
# shellcheck source=lib/live-iso.sh
source e2e/lib/live-iso.sh

demo=$BUILD/demo
port=${DEMO_PORT:-8931}
url=http://127.0.0.1:$port/
week1=2026-11-15
week2=2026-11-22
mkdir -p "$demo"

# Debian images need chroot, mounts and loop devices: root only.
with_debian=1
if [ "$(id -u)" != 0 ]; then
	with_debian=
	echo "demo: not root, so no Debian images (image-build os needs root); the store gets the tiny guest only" >&2
fi
with_live=
if [ -n "${DEMO_LIVE:-}" ]; then
	if [ -n "$with_debian" ]; then
		with_live=1
	else
		echo "demo: DEMO_LIVE=1 needs root (live-build runs debootstrap and chroot); no live ISO" >&2
	fi
fi

if [ ! -f "$demo/demo.key" ]; then
	"$bin/image-build" keygen --secret "$demo/demo.key" --public "$demo/demo.pub"
fi

# The store is reused when it verifies and holds what this script puts in it
# (a store from an older demo lacks the Debian weeks).
store_complete() {
	"$bin/image-build" verify --store "$demo/store" --public "$demo/demo.pub" >/dev/null 2>&1 || return 1
	local json want_bookworm=0 live
	json=$("$bin/image-build" list --store "$demo/store" --json) || return 1
	[ -n "$with_debian" ] && want_bookworm=2
	# The live ISO is added to a complete store on request (below), and kept.
	live=$(grep -c '"distribution": "debian-live"' <<<"$json")
	[ "$(grep -c '"distribution": "tiny"' <<<"$json")" = 2 ] &&
		[ "$(grep -c '"distribution": "bookworm"' <<<"$json")" = "$want_bookworm" ] &&
		[ "$(grep -c '"distribution": "memtest"' <<<"$json")" = 1 ] &&
		[ "$(grep -c '"distribution": ' <<<"$json")" = $((3 + want_bookworm + live)) ]
}

add() { # add LOG ARGS...: image-build add, its report shown and kept in LOG
	local log=$1; shift
	"$bin/image-build" add --store "$demo/store" --key "$demo/demo.key" "$@" | tee "$log"
}

if ! store_complete; then
	tiny_guest_build
	if [ -n "$with_debian" ]; then
		weekly_images_build "$demo/os"
	fi
	echo "demo: building the store in $demo/store"
	rm -rf "$demo/store"
	add "$demo/add-tiny-1.log" --distro tiny --title "Tiny guest (busybox)" \
		--date "$week1" --memory-mib 256 --cpus 1 --notes "busybox guest that prints a marker" "$TINY_GUEST_IMG"
	add "$demo/add-tiny-2.log" --distro tiny \
		--date "$week2" --memory-mib 256 --cpus 1 --notes "busybox guest that prints a marker" "$TINY_GUEST_IMG"
	if [ -n "$with_debian" ]; then
		# Images built before `image-build os` wrote its login hint beside them.
		for img in "$WEEK1_IMG" "$WEEK2_IMG"; do
			[ -e "$img.login" ] || echo "root, no password" >"$img.login"
		done
		add "$demo/add-bookworm-1.log" --distro bookworm --title "Debian 12 (bookworm)" --date "$week1" \
			--notes "point release, built from scratch by image-build os" "$WEEK1_IMG"
		add "$demo/add-bookworm-2.log" --distro bookworm --date "$week2" \
			--notes "security and stable updates (kernel held), upgraded in place from $week1" "$WEEK2_IMG"
	fi
	# Debian's own bootable ISO, as a CD: add sees ISO 9660 and sets media cdrom.
	memtest_iso=/usr/lib/memtest86+/memtest86+x64.iso
	add "$demo/add-memtest.log" --distro memtest --title "Memtest86+ (Debian's CD image)" --date "$week2" \
		--firmware uefi --source-url "https://packages.debian.org/bookworm/memtest86+" \
		--source-sha256 "$(sha256sum "$memtest_iso" | cut -d' ' -f1)" \
		--notes "memory tester; boots from a CD drive, BIOS or UEFI" "$memtest_iso"
fi
if [ -n "$with_live" ]; then
	live_iso_build "$demo/live"
	listing=$("$bin/image-build" list --store "$demo/store" --json)
	if ! grep -q '"distribution": "debian-live"' <<<"$listing"; then
		live_iso_add "$demo/store" "$demo/demo.key" "$week2" | tee "$demo/add-live.log"
	fi
	if [ ! -f "$demo/live/boot.txt" ]; then
		echo "demo: booting the live ISO once from the lazy mount (e2e/test-live-iso.sh; about 15 minutes under TCG here)"
		bash e2e/test-live-iso.sh ||
			echo "demo: the live ISO's boot check failed (see above); the menu starts anyway, and the next DEMO_LIVE=1 run tries it again"
	fi
fi
# A catalog expires; the demo keeps its own fresh.
"$bin/image-build" sign --store "$demo/store" --key "$demo/demo.key" >/dev/null
"$bin/image-build" feed --store "$demo/store" --base-url "$url" --out "$demo/store/feed.xml"

echo
"$bin/image-build" list --store "$demo/store"
if [ -f "$demo/add-bookworm-2.log" ] && [ -n "$with_debian" ]; then
	# "blocks: N total, Z zero, E already in the store, M new; X written; ..."
	read -r total zero existing new written < <(sed -n \
		's/^blocks: \([0-9]*\) total, \([0-9]*\) zero, \([0-9]*\) already in the store, \([0-9]*\) new; \(.*\) written;.*/\1 \2 \3 \4 \5/p' \
		"$demo/add-bookworm-2.log")
	echo
	echo "bookworm $week2 (the weekly update): $existing of $((total - zero)) non-zero blocks were already in the store" \
		"($((100 * existing / (total - zero)))% shared); $new new blocks, $written stored"
fi

if [ -f "$demo/live/boot.txt" ]; then
	echo
	echo "debian-live: $(cat "$demo/live/boot.txt")"
fi

NGINX_RUN=$demo/nginx
nginx_start "$demo/store" "$port"
at_exit nginx_stop
echo
echo "demo store: $url (nginx, pid $NGINX_PID), public key $demo/demo.pub, feed ${url}feed.xml"

if [ -t 0 ] && [ -t 1 ] && [ -z "${DEMO_MOUNT_ONLY:-}" ]; then
	display=none
	[ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ] && display=sdl
	"$bin/circular" --server "$url" --public "$demo/demo.pub" --cache "$demo/cache" --display "$display"
	exit 0
fi
if [ -z "${DEMO_MOUNT_ONLY:-}" ]; then
	echo "demo: the menu needs a terminal, and this script's input or output is not one (a pipe or a file);"
	echo "      so it mounts the store and reads from it instead. Run \`make demo\` in a terminal for the menu."
fi

mnt=$demo/mnt
mkdir -p "$mnt"
"$bin/blockfs" mount --cache "$demo/cache" --public "$demo/demo.pub" "$url" "$mnt" &
blockfs_pid=$!
at_exit 'kill $blockfs_pid 2>/dev/null; wait $blockfs_pid 2>/dev/null'
for _ in $(seq 100); do [ -e "$mnt/status.json" ] && break; sleep 0.1; done
echo
echo "mounted at $mnt:"
(cd "$mnt" && ls -l ./*/)
echo
echo "reading tiny/latest.img through the mount..."
cmp "$mnt/tiny/latest.img" <(cat "$mnt/tiny/$week1.img") && echo "both tiny snapshots read back identical (they share every block)"
"$bin/blockfs" status "$mnt"
cat <<TXT

The demo's nginx and this mount stop when this script ends. To use the store afterwards,
run \`make demo\` in a terminal (it serves the store while the menu runs), or serve
$demo/store with any web server on port $port, for example:
  cd $demo/store && python3 -m http.server --bind 127.0.0.1 $port

Next, while the store is served:
  boot it in the menu:   $bin/circular --server $url --public $demo/demo.pub --cache $demo/cache
  mount it yourself:     $bin/blockfs mount --cache $demo/cache --public $demo/demo.pub $url /some/dir
  see the catalog:       $bin/image-build list --store $demo/store      (feed: ${url}feed.xml)
  publish your own:      $bin/image-build add --store $demo/store --distro NAME --date YYYY-MM-DD --key $demo/demo.key IMAGE
TXT
