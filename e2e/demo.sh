#!/bin/bash
# `make demo`: builds (once, then reuses) a signed demo store under build/demo,
# serves it with nginx on 127.0.0.1:8931, and starts desktop mode on it. Without
# a terminal (or with DEMO_MOUNT_ONLY=1) it mounts the store, shows what is
# there, and says what to do next.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
cd "$repo"
# shellcheck source=lib/nginx.sh
source e2e/lib/nginx.sh
# shellcheck source=lib/tiny-guest.sh
source e2e/lib/tiny-guest.sh

bin=$repo/target/release
demo=$repo/build/demo
port=${DEMO_PORT:-8931}
url=http://127.0.0.1:$port/
mkdir -p "$demo"

if [ ! -f "$demo/demo.key" ]; then
	"$bin/image-build" keygen --secret "$demo/demo.key" --public "$demo/demo.pub"
fi

# The tiny guest: a real bootable disk (GRUB, Debian's kernel, busybox) that
# boots in seconds even without KVM. Two weekly snapshots of it.
if ! "$bin/image-build" verify --store "$demo/store" --public "$demo/demo.pub" >/dev/null 2>&1; then
	tiny_guest_build
	"$bin/image-build" add --store "$demo/store" --distro tiny --title "Tiny guest (busybox)" \
		--date 2026-11-15 --memory-mib 256 --cpus 1 --notes "busybox guest that prints a marker" \
		--key "$demo/demo.key" "$TINY_GUEST_IMG"
	"$bin/image-build" add --store "$demo/store" --distro tiny \
		--date 2026-11-22 --memory-mib 256 --cpus 1 --notes "busybox guest that prints a marker" \
		--key "$demo/demo.key" "$TINY_GUEST_IMG"
	# A generated image of mixed data, to watch blocks arrive and dedupe.
	python3 - "$demo/mixed.img" <<'PY'
import os, sys
with open(sys.argv[1], "wb") as f:
    for i in range(64):
        f.write(os.urandom(1 << 20) if i % 3 else bytes(1 << 20))
PY
	"$bin/image-build" add --store "$demo/store" --distro mixed --title "Generated data (not bootable)" \
		--date 2026-11-22 --notes "random and zero MiBs, for watching the cache fill" \
		--key "$demo/demo.key" "$demo/mixed.img"
	rm -f "$demo/mixed.img"
fi
# A catalog expires; the demo keeps its own fresh.
"$bin/image-build" sign --store "$demo/store" --key "$demo/demo.key" >/dev/null

NGINX_RUN=$demo/nginx
nginx_start "$demo/store" "$port"
trap nginx_stop EXIT
echo "demo store: $url (nginx, pid $NGINX_PID), public key $demo/demo.pub"

if [ -t 0 ] && [ -t 1 ] && [ -z "${DEMO_MOUNT_ONLY:-}" ]; then
	display=none
	[ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ] && display=sdl
	"$bin/circular" --server "$url" --public "$demo/demo.pub" --cache "$demo/cache" --display "$display"
	exit 0
fi

mnt=$demo/mnt
mkdir -p "$mnt"
"$bin/blockfs" mount --cache "$demo/cache" --public "$demo/demo.pub" "$url" "$mnt" &
blockfs_pid=$!
trap 'kill $blockfs_pid 2>/dev/null; wait $blockfs_pid 2>/dev/null; nginx_stop' EXIT
for _ in $(seq 100); do [ -e "$mnt/status.json" ] && break; sleep 0.1; done
echo
echo "mounted at $mnt:"
(cd "$mnt" && ls -l ./*/)
echo
echo "reading tiny/latest.img through the mount..."
cmp "$mnt/tiny/latest.img" <(cat "$mnt/tiny/2026-11-15.img") && echo "both tiny snapshots read back identical (they share every block)"
"$bin/blockfs" status "$mnt"
cat <<TXT

Next:
  boot it in the menu:   $bin/circular --server $url --public $demo/demo.pub --cache $demo/cache
  mount it yourself:     $bin/blockfs mount --cache $demo/cache --public $demo/demo.pub $url /some/dir
  publish your own:      $bin/image-build add --store $demo/store --distro NAME --date YYYY-MM-DD --key $demo/demo.key IMAGE
TXT
