#!/bin/bash
# The presenter's cost while the guest's screen is idle: presenter/tests/qemu_display.rs boots
# SeaBIOS under QEMU (TCG, -display dbus,p2p=yes,gl=off), connects the presenter with its
# in-memory output, and measures the CPU (every thread of the process, zbus's included) over
# 10 s in SeaBIOS's boot menu, where only the text cursor blinks. Issue 11's target is 0.1 core
# or less; this script says whether the figure meets it (the test itself only measures).
# Prints: presenter idle CPU: <cores> core over <s> s (<n> updates drawn), then the verdict.
# Then the drawing path's rate for full-screen changes (presenter/examples/draw_rate.rs: a
# whole-screen update copied and drawn scaled into a 1920x1080 screen in memory, one core;
# QEMU's D-Bus transfer is not counted): presenter draw: <guest> on <screen>: <n> frames/s.
# Not measured: frames per second end to end (a guest changing its whole screen under TCG is
# slower than the presenter; that figure would be the guest's).
# shellcheck source=../e2e/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../e2e/lib/common.sh"
out=$(cargo test --release -q -p presenter --test qemu_display -- --nocapture 2>&1)
grep -E "presenter idle CPU|panicked|test result" <<<"$out"
core=$(sed -n 's/^presenter idle CPU: \([0-9.]*\) core.*/\1/p' <<<"$out")
[ -n "$core" ] || fail "the presenter test printed no idle figure"
if awk -v c="$core" 'BEGIN { exit !(c <= 0.1) }'; then
	echo "presenter idle CPU: $core core, within the 0.1 core target"
else
	echo "presenter idle CPU: $core core, OVER the 0.1 core target"
fi
cargo run --release -q -p presenter --example draw_rate
