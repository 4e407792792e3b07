#!/bin/bash
# Two weekly snapshots of a real Debian image, built with `image-build os`
# (docs/OS-IMAGES.md), once, then reused:
#   week1.img  bookworm's point release, built from scratch (--no-updates), 2 GiB
#   week2.img  next week: --update-from week1.img, with bookworm-updates and
#              bookworm-security enabled, the kernel held (--hold linux-image-amd64)
# The kernel is held because a new kernel ABI is ~400 MiB of new files that no
# layout can share (docs/OS-IMAGES.md, "Measurements"); most weeks bring none.
#
#   source e2e/lib/weekly-images.sh; weekly_images_build DIR
# sets WEEK1_IMG and WEEK2_IMG. Builds only what is missing; `image-build os`
# writes its output by rename at the end, so an image that exists is complete.
# .deb files are cached in $BUILD/os-cache (shared with e2e/test-os-image.sh).
# Needs root (chroot, mounts, loop devices), about 3 GB free, and Debian's mirror.

weekly_images_build() {
	local dir=$1 here repo build bin cache t0
	here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
	repo=$(cd "$here/../.." && pwd)
	build=${BUILD:-$repo/build}
	bin=$repo/target/release/image-build
	cache=$build/os-cache
	WEEK1_IMG=$dir/week1.img
	WEEK2_IMG=$dir/week2.img
	mkdir -p "$dir" "$cache"
	if [ ! -f "$WEEK1_IMG" ]; then
		rm -f "$WEEK2_IMG" # a new week 1 makes the old week 2 meaningless
		echo "weekly images: building week 1 (debootstrap, bookworm point release, 2G; about 2 minutes)"
		t0=$SECONDS
		"$bin" os --suite bookworm --size 2G --no-updates --cache-dir "$cache" --out "$WEEK1_IMG"
		echo "$((SECONDS - t0))" >"$dir/week1.seconds"
	fi
	if [ ! -f "$WEEK2_IMG" ]; then
		echo "weekly images: building week 2 (--update-from week 1, security updates, kernel held)"
		t0=$SECONDS
		"$bin" os --update-from "$WEEK1_IMG" --hold linux-image-amd64 --cache-dir "$cache" --out "$WEEK2_IMG"
		echo "$((SECONDS - t0))" >"$dir/week2.seconds"
	fi
}
