#!/bin/bash
# The presenter's cost while the guest's screen is idle: presenter/tests/qemu_display.rs boots
# SeaBIOS under QEMU (TCG, -display dbus,p2p=yes,gl=off), connects the presenter with its
# in-memory output, and measures the CPU (every thread of the process, zbus's included) over
# 10 s in SeaBIOS's boot menu, where only the text cursor blinks. The test fails above 0.1 core.
# Prints: presenter idle CPU: <cores> core over <s> s (<n> updates drawn).
# Not measured yet: frames per second for full-screen changes at 1920x1080 (issue 11).
# shellcheck source=../e2e/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../e2e/lib/common.sh"
cargo test --release -q -p presenter --test qemu_display -- --nocapture 2>&1 |
	grep -E "presenter idle CPU|^PASS|panicked|test result"
