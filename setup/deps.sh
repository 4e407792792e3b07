#!/usr/bin/env bash
# `make deps`: install the Debian packages that setup/programs.tsv names, then check that every
# program and file listed there is present and works. A package can be installed and its program
# still gone (apt removed it to satisfy another package, or someone deleted it), so the check is
# on the programs, not on the package list. What is missing is (re)installed; what still cannot
# be had is named, with its package, and the exit status is 1.
#
#   setup/deps.sh           install and repair, then check
#   setup/deps.sh --check   only check; print what is missing; install nothing
#
# Versions: the packages come from Debian 12 (bookworm, its updates and security suites). Where
# the machine holds a newer build of one of them from another suite (say qemu-utils from
# bookworm-backports), it would not fit the rest of the family, so apt is told, for this run
# only, to prefer bookworm's (a pin above 1000 allows the downgrade). The machine's own apt
# configuration is not changed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
list=$here/programs.tsv

mode=install
case "${1:-}" in
"") ;;
--check) mode=check ;;
*) echo "setup/deps.sh: unknown option '$1' (use --check, or nothing)" >&2; exit 2 ;;
esac

# "what<TAB>package<TAB>args" for every entry, comments and blank lines dropped.
entries() { grep -v '^[[:space:]]*\(#\|$\)' "$list"; }

# Does one entry work? A path must exist; a program must be found and exit 0 with its arguments.
works() {
	local what=$1 args=$2
	if [[ $what == /* ]]; then
		[ -e "$what" ]
	else
		command -v "$what" >/dev/null 2>&1 || return 1
		# shellcheck disable=SC2086 # the arguments are a list
		timeout 20 "$what" $args </dev/null >/dev/null 2>&1
	fi
}

# Prints "what package" for each entry that does not work.
broken() {
	local what package args
	while IFS=$'\t' read -r what package args; do
		works "$what" "$args" || echo "$what $package"
	done < <(entries)
}

packages() { entries | cut -f2 | sort -u; }

not_installed() {
	local p
	for p in $(packages); do
		dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed' || echo "$p"
	done
}

report() {
	local what package
	while read -r what package; do
		[ -n "$what" ] || continue
		echo "make deps: '$what' is missing or does not work; it comes from the Debian package '$package'." >&2
	done <<<"$1"
}

bad=$(broken)
if [ "$mode" = check ]; then
	if [ -n "$bad" ]; then
		report "$bad"
		echo "make deps: run 'make deps' as root to install them." >&2
		exit 1
	fi
	echo "make deps: every program is present and works"
	exit 0
fi

missing=$(not_installed)
if [ -n "$missing$bad" ]; then
	[ "$(id -u)" = 0 ] || {
		report "$bad"
		echo "make deps: missing packages:" $missing >&2
		echo "make deps: run it as root (it calls apt-get)" >&2
		exit 1
	}
	repair=$(echo "$bad" | awk 'NF {print $2}' | sort -u)
	echo "make deps: installing" $missing $(comm -13 <(echo "$missing" | sort -u) <(echo "$repair")) | tr -s ' '
	prefs=$(mktemp)
	trap 'rm -f "$prefs"' EXIT
	for suite in bookworm bookworm-updates bookworm-security; do
		printf 'Package: %s qemu-*\nPin: release o=Debian,n=%s\nPin-Priority: 1001\n\n' \
			"$(packages | tr '\n' ' ')" "$suite" >>"$prefs"
	done
	apt=(apt-get -q -y -o Dir::Etc::Preferences="$prefs" -o Dpkg::Use-Pty=0)
	export DEBIAN_FRONTEND=noninteractive
	"${apt[@]}" update -qq
	# All of them in one transaction, so apt cannot remove one to make room for another.
	# shellcheck disable=SC2046 # one word per package
	"${apt[@]}" install --no-install-recommends --allow-downgrades $(packages)
	# A package that dpkg calls installed but whose files are gone needs a reinstall.
	bad=$(broken)
	if [ -n "$bad" ]; then
		# shellcheck disable=SC2046
		"${apt[@]}" install --reinstall --no-install-recommends $(echo "$bad" | awk '{print $2}' | sort -u)
	fi
fi

bad=$(broken)
if [ -n "$bad" ]; then
	report "$bad"
	echo "make deps: apt-get could not provide them; see its output above." >&2
	exit 1
fi
echo "make deps: every program is present and works"
# The appliance builders' own apt sources (non-free-firmware for GPU and Wi-Fi firmware).
if [ "$(id -u)" = 0 ]; then
	bash "$here/apt.sh" "${BUILD:-$here/../build}"
else
	echo "make deps: not root, so build/apt (the appliance's apt sources) is not refreshed" >&2
fi
command -v cargo >/dev/null || { echo "make deps: cargo not found; install Rust with rustup (https://rustup.rs) first" >&2; exit 1; }
