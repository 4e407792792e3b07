#!/bin/bash
# Benchmark of the store and the mount on a 1 GiB image of mixed data (40% random,
# 40% compressible text, 20% zeros), served by nginx on loopback. Prints:
#   add throughput, cold sequential read through the mount, warm read (every
#   block from the disk cache, verified), and the raw file read from the page cache.
# shellcheck source=../e2e/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../e2e/lib/common.sh"
# shellcheck source=../e2e/lib/nginx.sh
source e2e/lib/nginx.sh
work=$BUILD/bench-store
rm -rf "$work/store" "$work/store-level1" "$work/cache" "$work/mnt"
mkdir -p "$work/mnt"
NGINX_RUN=$work/nginx
BLOCKFS_PID=
at_exit '[ -n "$BLOCKFS_PID" ] && kill "$BLOCKFS_PID" 2>/dev/null && wait "$BLOCKFS_PID" 2>/dev/null; nginx_stop'

size_mib=${BENCH_MIB:-1024}
if [ ! -f "$work/mixed.img" ] || [ "$(stat -c %s "$work/mixed.img")" != $((size_mib << 20)) ]; then
	python3 - "$work/mixed.img" "$size_mib" <<'PY'
import os, random, sys
random.seed(1)
words = [bytes(random.choice("abcdefghijklmnopqrstuvwxyz ") for _ in range(random.randint(2, 9))).decode() if False else
         "".join(random.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(random.randint(2, 9))) for _ in range(5000)]
with open(sys.argv[1], "wb") as f:
    for i in range(int(sys.argv[2])):
        kind = i % 5
        if kind in (0, 1):
            f.write(os.urandom(1 << 20))
        elif kind in (2, 3):
            text = " ".join(random.choice(words) for _ in range(200000)).encode()
            f.write((text * 2)[: 1 << 20])
        else:
            f.write(bytes(1 << 20))
PY
fi
[ -f "$work/key" ] || "$bin/image-build" keygen --secret "$work/key" --public "$work/key.pub" >/dev/null
image_bytes=$(stat -c %s "$work/mixed.img")
now() { date +%s.%N; }
rate() { python3 -c "import sys; print(f'{$image_bytes / 1e6 / ($2 - $1):.0f} MB/s ({$2 - $1:.2f} s)')"; }
mount_store() {
	"$bin/blockfs" mount --cache "$work/cache" --public "$work/key.pub" "http://127.0.0.1:$port/" "$work/mnt" 2>>"$work/blockfs.log" &
	BLOCKFS_PID=$!
	for _ in $(seq 100); do [ -e "$work/mnt/status.json" ] && return; sleep 0.1; done
	cat "$work/blockfs.log"; exit 1
}
unmount_store() { kill "$BLOCKFS_PID"; wait "$BLOCKFS_PID" || true; BLOCKFS_PID=; }

cat "$work/mixed.img" >/dev/null # the source in the page cache: add measures hashing and compression
t0=$(now)
"$bin/image-build" add --store "$work/store" --distro bench --date 2026-11-22 --key "$work/key" "$work/mixed.img" >"$work/add.log"
t1=$(now)
add_rate=$(rate "$t0" "$t1")
t0=$(now)
"$bin/image-build" add --store "$work/store-level1" --distro bench --date 2026-11-22 --level 1 --key "$work/key" "$work/mixed.img" >/dev/null
t1=$(now)
add1_rate=$(rate "$t0" "$t1")
level1_bytes=$(du -sb "$work/store-level1/blocks" | cut -f1)

port=$(free_port)
nginx_start "$work/store" "$port"
sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
mount_store
t0=$(now); cat "$work/mnt/bench/latest.img" >/dev/null; t1=$(now)
cold=$(rate "$t0" "$t1")
cmp "$work/mixed.img" "$work/mnt/bench/latest.img" || { echo "bench: the mount read differs from the image" >&2; exit 1; }
unmount_store

mount_store # a new mount: nothing in the kernel's page cache for it, every block from the disk cache
cpu0=$(awk '{print $14+$15}' "/proc/$BLOCKFS_PID/stat")
t0=$(now); cat "$work/mnt/bench/latest.img" >/dev/null; t1=$(now)
cpu1=$(awk '{print $14+$15}' "/proc/$BLOCKFS_PID/stat")
warm=$(rate "$t0" "$t1")
hits=$("$bin/blockfs" status "$work/mnt" | grep '^reads:')
t0=$(now); cat "$work/mnt/bench/latest.img" >/dev/null; t1=$(now)
again=$(rate "$t0" "$t1")
unmount_store

t0=$(now); cat "$work/mixed.img" >/dev/null; t1=$(now)
raw=$(rate "$t0" "$t1")

echo "image: $(( image_bytes >> 20 )) MiB mixed (40% random, 40% text, 20% zeros), 256 KiB blocks, $(nproc) cores"
grep '^blocks:' "$work/add.log"
printf '%-48s %s\n' "image-build add (zstd level 3, the default)" "$add_rate" \
	"image-build add --level 1 ($(( level1_bytes >> 20 )) MiB stored)" "$add1_rate" \
	"cold sequential read (nginx on loopback)" "$cold" \
	"warm sequential read (disk cache, verified)" "$warm" \
	"the same file read again (kernel page cache)" "$again" \
	"raw file read (page cache), for comparison" "$raw"
echo "warm read: $hits"
echo "warm read: blockfs used $(( cpu1 - cpu0 ))0 ms of CPU (decompressing and verifying every block)"
echo "load average while measuring: $(cut -d' ' -f1-3 /proc/loadavg)"
