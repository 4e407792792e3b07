#!/bin/bash
# A Debian 12 live ISO, built once with Debian's own live-build (`lb config` + `lb build`),
# then reused: the demo's live CD (`DEMO_LIVE=1 make demo`), e2e/test-live-iso.sh and
# bench/live-iso.sh boot it from the lazy mount.
#
#   source e2e/lib/live-iso.sh
#   live_iso_path DIR    sets LIVE_ISO (DIR/live.iso); builds nothing
#   live_iso_build DIR   builds DIR/live.iso unless it exists; sets LIVE_ISO
#
# A console system: live-boot and live-config (which live-build adds itself), user-setup
# and sudo (live-config's recommends, which make its user "user", password "live"), the
# kernel, nothing else: no recommends, no firmware, no installer, no memtest. About 200 MB
# of packages from Debian's mirror and a few minutes of debootstrap and squashfs.
#
# Three publish-time choices of ours, on top of Debian's defaults: a longer start timeout for
# slow emulated boots (LIVE_ISO_APPEND below); the kernel also writes to
# the serial port and a getty runs there (console=ttyS0, so a test can read `login:`
# without a screen), and the boot menus (isolinux under BIOS, GRUB under UEFI) start the
# live system after 1 s instead of waiting for a key. live-config's autologin is turned
# off (live-config.noautologin) so that the console shows Debian's own `login:` prompt.
#
# The ISO is moved into place at the end, so an ISO that exists is complete. The lb work
# tree (DIR/lb) keeps live-build's package cache, so a rebuild downloads nothing again.
# Needs root (debootstrap, chroot, mounts) and Debian's mirror. Every suite comes from
# deb.debian.org (security from its debian-security path, as Debian 12's own sources.list
# names it), not security.debian.org: one host for a machine's proxy or firewall to allow.

# Kernel command line of the live system: live-build's own, plus our console choices, plus
# a longer start timeout: under TCG on a loaded machine udev announced /dev/ttyS0 later than
# systemd's default 90 s, so serial-getty@ttyS0 was given up and no `login:` came (seen in
# e2e/test-live-iso.sh). systemd 252 (bookworm) has no device-only timeout option
# (systemd.default_device_timeout_sec= came later), so the default start timeout it is.
LIVE_ISO_APPEND="boot=live components live-config.noautologin console=tty0 console=ttyS0,115200n8 systemd.default_timeout_start_sec=600"
# How to log in, as the catalog's login hint says it: live-config's user and password
# (LIVE_USERNAME and the password hash of its user-setup script; live_iso_build checks them
# in the built system, e2e/test-live-iso.sh logs in with them).
LIVE_ISO_LOGIN="user, password live"

live_iso_path() {
	LIVE_ISO=$1/live.iso
}

live_iso_build() {
	local dir=$1 lb=$1/lb t0
	live_iso_path "$dir"
	[ -f "$LIVE_ISO" ] && return 0
	command -v lb >/dev/null || {
		echo "live ISO: live-build is missing: install Debian's live-build (make deps)" >&2
		return 1
	}
	[ "$(id -u)" = 0 ] || {
		echo "live ISO: lb build needs root (debootstrap, chroot, mounts)" >&2
		return 1
	}
	echo "live ISO: building a Debian 12 console live ISO with live-build in $lb (a few minutes, ~200 MB from Debian's mirror)"
	t0=$SECONDS
	mkdir -p "$lb"
	(
		set -e
		cd "$lb"
		# A half-done build from an interrupted run: start clean, keep the package cache.
		lb clean >/dev/null 2>&1 || true
		rm -rf config
		lb config \
			--distribution bookworm \
			--archive-areas main \
			--mirror-bootstrap http://deb.debian.org/debian/ \
			--mirror-chroot http://deb.debian.org/debian/ \
			--mirror-binary http://deb.debian.org/debian/ \
			--parent-mirror-chroot-security http://deb.debian.org/debian-security/ \
			--parent-mirror-binary-security http://deb.debian.org/debian-security/ \
			--mirror-chroot-security http://deb.debian.org/debian-security/ \
			--mirror-binary-security http://deb.debian.org/debian-security/ \
			--binary-images iso-hybrid \
			--apt-recommends false \
			--apt-indices false \
			--apt-source-archives false \
			--firmware-binary false \
			--firmware-chroot false \
			--debian-installer none \
			--memtest none \
			--win32-loader false \
			--zsync false \
			--checksums sha256 \
			--chroot-squashfs-compression-type zstd \
			--iso-application "Circular demo live system" \
			--iso-volume "Debian 12 live (Circular demo)" \
			--bootappend-live "$LIVE_ISO_APPEND"
		# live-config makes its user only with user-setup; sudo lets that user administer.
		printf 'user-setup\nsudo\n' >config/package-lists/circular.list.chroot
		# Boot the default entry after 1 s (isolinux counts tenths; GRUB seconds).
		mkdir -p config/bootloaders/isolinux config/bootloaders/grub-pc
		cp /usr/share/live/build/bootloaders/isolinux/* config/bootloaders/isolinux/
		sed -i 's/^timeout 0$/timeout 10/' config/bootloaders/isolinux/isolinux.cfg
		grep -qx 'timeout 10' config/bootloaders/isolinux/isolinux.cfg
		{ cat /usr/share/live/build/bootloaders/grub-pc/config.cfg; echo 'set timeout=1'; } \
			>config/bootloaders/grub-pc/config.cfg
		lb build
	) >"$dir/lb-build.log" 2>&1 || {
		tail -n 30 "$dir/lb-build.log" >&2
		echo "live ISO: lb build failed; its log is $dir/lb-build.log" >&2
		return 1
	}
	[ -f "$lb/live-image-amd64.hybrid.iso" ] || {
		echo "live ISO: lb build made no live-image-amd64.hybrid.iso; see $dir/lb-build.log" >&2
		return 1
	}
	live_iso_check_login "$lb/chroot" || return 1
	echo "$((SECONDS - t0))" >"$dir/live.seconds"
	mv "$lb/live-image-amd64.hybrid.iso" "$LIVE_ISO"
	echo "live ISO: $LIVE_ISO, $(($(stat -c %s "$LIVE_ISO") / 1048576)) MiB, built in $((SECONDS - t0)) s"
}

# live_iso_check_login CHROOT: the built system makes the user and password LIVE_ISO_LOGIN
# names: live-config's default LIVE_USERNAME, the crypt(3) hash its user-setup script gives
# user-setup, and user-setup itself (without it live-config makes no user at all).
live_iso_check_login() {
	local root=$1 user password
	user=${LIVE_ISO_LOGIN%%,*} password=${LIVE_ISO_LOGIN##* }
	python3 - "$root" "$user" "$password" <<'PY' || {
import re, sys, warnings
warnings.simplefilter("ignore", DeprecationWarning)  # crypt: gone in Python 3.13, here in 3.11
import crypt
root, user, password = sys.argv[1:]
name = re.search(r'^LIVE_USERNAME="([^"]*)"', open(root + "/lib/live/init-config.sh").read(), re.M)[1]
hashed = re.search(r'^\s*_PASSWORD="([^"]*)"', open(root + "/lib/live/config/0030-user-setup").read(), re.M)[1]
open(root + "/usr/lib/user-setup/user-setup-apply").close()
assert name == user, f"live-config's user is {name!r}, not {user!r}"
assert crypt.crypt(password, hashed) == hashed, f"live-config's password hash {hashed} is not {password!r}"
PY
		echo "live ISO: the built system does not log in as '$LIVE_ISO_LOGIN'; fix LIVE_ISO_LOGIN in e2e/lib/live-iso.sh" >&2
		return 1
	}
}

# live_iso_add STORE KEY DATE: publishes LIVE_ISO (live_iso_path first) into STORE as the
# `debian-live` distribution, as the demo does: media cdrom (add sees ISO 9660), the memory
# add proposes, the file's SHA-256 as its source and LIVE_ISO_LOGIN as the login hint.
# Prints add's report.
live_iso_add() {
	local store=$1 key=$2 date=$3 repo
	repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
	# Our own build of Debian's packages, so its source is the file live-build wrote.
	"$repo/target/release/image-build" add --store "$store" --key "$key" --distro debian-live \
		--title "Debian 12 live (live-build, console)" --date "$date" \
		--source-url "file://$(realpath "$LIVE_ISO")" --source-sha256 "$(sha256sum "$LIVE_ISO" | cut -d' ' -f1)" \
		--login "$LIVE_ISO_LOGIN" \
		--notes "live system from a CD drive, built by Debian's live-build; nothing installed" "$LIVE_ISO"
}
