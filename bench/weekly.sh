#!/bin/bash
# Benchmark of a weekly update: what publishing next week's Debian snapshot costs.
# Adds week 1 and week 2 of a real Debian image to a fresh store and prints the
# bytes newly stored for week 2 against the image's size and against the size of
# the files that changed between the two weeks.
#
# Images: the two weeks e2e/test-os-image.sh leaves in build/os-e2e (a.img, and
# w2.img = a.img + openssh-server) when present; else the demo's weekly images in
# build/demo/os (point release, then a week of security updates with the kernel
# held), built once by e2e/lib/weekly-images.sh. BENCH_WEEK1/BENCH_WEEK2 choose others.
#
# Changed files: both images' root filesystems are mounted read-only through
# loop devices, and every regular file of week 2 that is new or whose bytes
# differ from week 1's file at the same path counts with its size (deleted files
# cost nothing). Needs root (loop devices).
# shellcheck source=../e2e/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../e2e/lib/common.sh"
build=$BUILD
work=$build/bench-weekly
need_root

if [ -n "${BENCH_WEEK1:-}" ]; then
	week1=$BENCH_WEEK1 week2=${BENCH_WEEK2:?give BENCH_WEEK2 too} what="given images"
elif [ -f "$build/os-e2e/a.img" ] && [ -f "$build/os-e2e/w2.img" ]; then
	week1=$build/os-e2e/a.img week2=$build/os-e2e/w2.img what="test-os-image.sh's weeks: + openssh-server"
else
	# shellcheck source=../e2e/lib/weekly-images.sh
	source e2e/lib/weekly-images.sh
	weekly_images_build "$build/demo/os"
	week1=$WEEK1_IMG week2=$WEEK2_IMG what="the demo's weeks: security updates, kernel held"
fi

rm -rf "$work"
mkdir -p "$work/w1" "$work/w2"
cleanup() {
	umount "$work/w1" 2>/dev/null || true
	umount "$work/w2" 2>/dev/null || true
}
at_exit cleanup

blocks_bytes() { # the compressed bytes of every block file in the store
	find "$work/store/blocks" -type f -printf '%s\n' 2>/dev/null | awk '{s += $1} END {print s + 0}'
}

"$bin/image-build" keygen --secret "$work/key" --public "$work/key.pub" >/dev/null
t0=$SECONDS
"$bin/image-build" add --store "$work/store" --distro bookworm --date 2026-11-15 --key "$work/key" "$week1" >"$work/add1.log"
add1_s=$((SECONDS - t0))
before=$(blocks_bytes)
t0=$SECONDS
"$bin/image-build" add --store "$work/store" --distro bookworm --date 2026-11-22 --key "$work/key" "$week2" >"$work/add2.log"
add2_s=$((SECONDS - t0))
after=$(blocks_bytes)
# "blocks: N total, Z zero, E already in the store, M new; ..."
read -r total zero existing new < <(sed -n \
	's/^blocks: \([0-9]*\) total, \([0-9]*\) zero, \([0-9]*\) already in the store, \([0-9]*\) new;.*/\1 \2 \3 \4/p' "$work/add2.log")
[ -n "${new:-}" ] || { cat "$work/add2.log"; echo "bench/weekly: could not read add's block counts" >&2; exit 1; }
block_size=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["block_size"])' \
	"$work/store/$(sed -n 's/^index: *//p' "$work/add2.log")")

mount_root() { # mount_root IMAGE DIR: the image's first partition, read-only, journal not replayed
	# Through a loop device at the partition's offset (partition nodes like loop0p1
	# need udev, which containers lack); `mount -o loop` frees the device at umount.
	local start
	start=$(partx -g -o START -n 1 "$1")
	mount -o "ro,noload,loop,offset=$((start * 512))" -t ext4 "$1" "$2"
}
mount_root "$week1" "$work/w1"
mount_root "$week2" "$work/w2"
read -r changed_bytes changed_files < <(python3 - "$work/w1" "$work/w2" "$work/changed-files.txt" <<'PY'
import filecmp, os, stat, sys
old, new, listing = sys.argv[1:]
size = files = 0
seen = set()  # hard links are one file
changed = []
for top, dirs, names in os.walk(new):
    for name in names:
        path = os.path.join(top, name)
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode) or st.st_ino in seen:
            continue
        seen.add(st.st_ino)
        twin = os.path.join(old, os.path.relpath(path, new))
        try:
            same = stat.S_ISREG(os.lstat(twin).st_mode) and filecmp.cmp(path, twin, shallow=False)
        except FileNotFoundError:
            same = False
        if not same:
            size += st.st_size
            files += 1
            changed.append((st.st_size, os.path.relpath(path, new)))
with open(listing, "w") as f:  # biggest first, for a person who wants to know why
    f.writelines(f"{n}\t/{p}\n" for n, p in sorted(changed, reverse=True))
print(size, files)
PY
)

python3 - "$week2" "$total" "$zero" "$new" "$block_size" "$((after - before))" "$changed_bytes" "$changed_files" "$what" "$add1_s" "$add2_s" <<'PY'
import os, sys
image, total, zero, new, bs, stored, changed, nfiles, what, t1, t2 = sys.argv[1:]
total, zero, new, bs, stored, changed, nfiles = map(int, (total, zero, new, bs, stored, changed, nfiles))
size = os.stat(image).st_size
nonzero = (total - zero) * bs
mib = lambda b: f"{b / 2**20:.1f} MiB"
print(f"weekly update ({what}; add took {t1} s and {t2} s):")
print(f"  newly stored: {new} new blocks of {bs // 1024} KiB ({mib(new * bs)} before zstd), {mib(stored)} written")
print(f"  vs the image: {100 * stored / size:.2f}% of its {mib(size)} "
      f"({100 * stored / nonzero:.1f}% of its {mib(nonzero)} of non-zero blocks; "
      f"{100 * (total - zero - new) / (total - zero):.1f}% of those were already stored)")
ratio = lambda b: f"{b / changed:.2f}x" if changed else "n/a"
print(f"  vs the changed files: {nfiles} files new or changed, {mib(changed)}; "
      f"stored/changed = {ratio(stored)} (new blocks before zstd: {ratio(new * bs)})")
PY
