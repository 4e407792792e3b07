#!/bin/bash
# End-to-end test of the publisher's and the client's command lines, as a person
# would use them: image-build keygen/add/verify/gc/sign, and blockfs mount/status
# over nginx on loopback. Checks what the commands print and what the mount holds.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
cd "$repo"
# shellcheck source=lib/nginx.sh
source e2e/lib/nginx.sh
cargo build --release -q -p blockfs -p image-build
bin=$repo/target/release
work=$(mktemp -d /tmp/circular-e2e-store.XXXXXX)
NGINX_RUN=$work/nginx
BLOCKFS_PID=
cleanup() {
	local rc=$?
	[ -n "$BLOCKFS_PID" ] && kill "$BLOCKFS_PID" 2>/dev/null && wait "$BLOCKFS_PID" 2>/dev/null
	nginx_stop
	if [ $rc -eq 0 ]; then rm -rf "$work"; else echo "kept $work for inspection" >&2; fi
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
expect() { # expect PATTERN FILE: the output must contain PATTERN
	grep -qE -- "$1" "$2" || { echo "---- $2 ----" >&2; cat "$2" >&2; fail "expected /$1/"; }
}
cd "$work"

echo "-- keygen refuses to overwrite a secret key"
"$bin/image-build" keygen --secret key --public key.pub >/dev/null
[ "$(stat -c %a key)" = 600 ] || fail "secret key is not mode 600"
if "$bin/image-build" keygen --secret key --public key.pub 2>err; then fail "overwrote the key"; fi
expect "refusing to overwrite" err

echo "-- add: a 12.5 MiB image with random data, zero runs and a ragged end"
head -c 6M /dev/urandom >img1
truncate -s 10M img1
# Sector-aligned (qemu-img rounds sizes up to 512 bytes), not block-aligned.
head -c 2500096 /dev/urandom >>img1
"$bin/image-build" add --store store --distro demo --date 2026-11-15 --title "Demo OS" --key key img1 >add1
expect "blocks: 50 total, 16 zero, 0 already in the store, 34 new" add1
echo "-- add the same image again: no block written"
"$bin/image-build" add --store store --distro demo --date 2026-11-16 --key key img1 >add2
expect "blocks: 50 total, 16 zero, 34 already in the store, 0 new; 0 B written" add2
echo "-- add a qcow2 of a changed image: converted, and only the changed block is new"
cp img1 img2
printf 'week two' | dd of=img2 bs=1 seek=300000 conv=notrunc status=none
qemu-img convert -f raw -O qcow2 img2 img2.qcow2
"$bin/image-build" add --store store --distro demo --date 2026-11-22 --key key img2.qcow2 >add3 2>&1
expect "converting .* from qcow2" add3
expect "33 already in the store, 1 new" add3
echo "-- bad input gets a clear error"
if "$bin/image-build" add --store store --distro Demo --date 2026-11-22 --key key img1 2>err; then fail "bad name accepted"; fi
expect "distribution name" err
if "$bin/image-build" add --store store --distro demo --date 2026-13-01 --key key img1 2>err; then fail "bad date accepted"; fi
expect "YYYY-MM-DD" err
if "$bin/image-build" add --store store --distro demo --date 2026-11-30 --block-size 1000 --key key img1 2>err; then fail "bad block size accepted"; fi
expect "power of two" err
"$bin/image-build" keygen --secret other --public other.pub >/dev/null
if "$bin/image-build" add --store store --distro demo --date 2026-11-30 --key other img1 2>err; then fail "foreign key accepted"; fi
expect "did not sign this store" err

echo "-- verify: sound, then each kind of damage is reported"
"$bin/image-build" verify --store store --public key.pub >verify
expect "is sound" verify
block=$(find store/blocks -type f | sort | head -1)
cp "$block" saved-block
printf 'X' | dd of="$block" bs=1 seek=10 conv=notrunc status=none
if "$bin/image-build" verify --store store --public key.pub >verify; then fail "verify missed a corrupt block"; fi
expect "is corrupt" verify
rm "$block"
if "$bin/image-build" verify --store store --public key.pub >verify; then fail "verify missed a missing block"; fi
expect "is missing" verify
cp saved-block "$block"
if "$bin/image-build" verify --store store --public other.pub >verify; then fail "verify accepted a wrong key"; fi
expect "signature does not match" verify

echo "-- blockfs mount over nginx: byte-for-byte, status, latest"
nginx_start "$work/store" 18931
mkdir mnt
"$bin/blockfs" mount --cache cache --public key.pub http://127.0.0.1:18931/ mnt 2>blockfs.log &
BLOCKFS_PID=$!
for _ in $(seq 100); do [ -e mnt/status.json ] && break; sleep 0.1; done
[ -e mnt/status.json ] || { cat blockfs.log; fail "mount did not appear"; }
cmp img1 mnt/demo/2026-11-15.img || fail "2026-11-15.img differs"
cmp img2 mnt/demo/latest.img || fail "latest.img differs"
[ "$(readlink mnt/demo/latest.img)" = 2026-11-22.img ] || fail "latest.img does not point at the newest"
"$bin/blockfs" status mnt >status
expect "demo/2026-11-22  100% cached: boots offline" status
expect "fetched: .* in 35 blocks" status
kill "$BLOCKFS_PID"; wait "$BLOCKFS_PID" || true; BLOCKFS_PID=
grep -q " $work/mnt " /proc/mounts && fail "SIGTERM did not unmount"
expect "unmounting" blockfs.log

echo "-- gc keeps the newest snapshot and deletes what nothing uses"
"$bin/image-build" gc --store store --keep 1 --key key >gc
expect "2 snapshots dropped" gc
"$bin/image-build" verify --store store --public key.pub >verify
expect "is sound" verify
[ "$(find store/blocks -type f | wc -l)" = 34 ] || fail "gc left $(find store/blocks -type f | wc -l) blocks, expected 34"

echo "-- bad flags and URLs"
if "$bin/blockfs" mount --public key.pub ftp://x/ mnt 2>err; then fail "ftp accepted"; fi
expect "not supported" err
if "$bin/blockfs" mount --public nokey http://127.0.0.1:18931/ mnt 2>err; then fail "missing key accepted"; fi
expect "nokey" err
echo PASS
