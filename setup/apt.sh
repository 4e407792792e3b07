#!/usr/bin/env bash
# The project's own apt configuration, for the appliance builders' `apt-get download`:
# Debian 12's suites with the non-free-firmware component (setup/apt/sources.list.d), with
# its own package lists and cache under BUILD/apt, so the machine's apt sources stay as they
# are (they may list only `main`).
#
#   setup/apt.sh BUILD     writes BUILD/apt/apt.conf and runs `apt-get update` with it
#
# Then: APT_CONFIG=BUILD/apt/apt.conf apt-get download firmware-misc-nonfree
# (the Makefile's initramfs target and e2e/test-usb-boot.sh pass it to image-build).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:?usage: setup/apt.sh BUILD_DIR}
mkdir -p "$build"
build=$(cd "$build" && pwd)
dir=$build/apt
mkdir -p "$dir/lists/partial" "$dir/cache/archives/partial"
conf=$dir/apt.conf
cat >"$conf.tmp" <<CONF
// Written by setup/apt.sh: the project's own apt sources (with non-free-firmware).
Dir::Etc::SourceList "/dev/null";
Dir::Etc::SourceParts "$here/apt/sources.list.d";
Dir::State::Lists "$dir/lists";
Dir::Cache "$dir/cache";
// The lists live in the checkout, which apt's download user (_apt) may not be able to
// write; root downloads them itself.
APT::Sandbox::User "root";
CONF
APT_CONFIG=$conf.tmp apt-get -q -o Dpkg::Use-Pty=0 update -qq
mv "$conf.tmp" "$conf"
echo "setup/apt.sh: $conf (Debian 12 with non-free-firmware) is ready"
