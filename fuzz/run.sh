#!/usr/bin/env bash
# `make fuzz`: builds every target with AFL++ instrumentation (cargo-afl, stable toolchain),
# replays the seeds and every crash kept in crashes/, then fuzzes each target for
# FUZZ_SECONDS (default 60) and prints executions and crashes per target. Exit 1 on a crash.
# FUZZ_EXECS stops a target earlier, after about that many executions (AFL++'s -E).
#   FUZZ_TARGETS="index dhcp" FUZZ_SECONDS=3600 make fuzz
#   FUZZ_SECONDS=3600 FUZZ_EXECS=10000000 make fuzz    # the issue's bar: 10 M executions or 1 h
set -euo pipefail
cd "$(dirname "$0")"
seconds=${FUZZ_SECONDS:-60}
execs=${FUZZ_EXECS:+-E $FUZZ_EXECS}
command -v cargo-afl >/dev/null || { echo "fuzz: installing cargo-afl (builds AFL++, a few minutes, once)"; cargo install --locked cargo-afl; }
cargo afl build --release -q
targets=${FUZZ_TARGETS:-$(ls src/bin | sed 's/\.rs$//')}
# AFL's own checks that do not apply to a shared test machine (CPU governor, core dumps).
export AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_UI=1 AFL_QUIET=1
# Not bound to a core: on a shared two-core machine a second target would find no free core.
export AFL_NO_AFFINITY=1
status=0
printf '%-14s %14s %10s %9s %8s %8s\n' target executions exec/s seconds crashes hangs
for t in $targets; do
	# Replay what is kept: seeds and past crashes must all return.
	for f in seeds/"$t"/* crashes/"$t"/*; do
		[ -f "$f" ] || continue
		target/release/"$t" <"$f" >/dev/null 2>&1 || { echo "fuzz: $t fails on $f" >&2; status=1; }
	done
	out=out/$t
	rm -rf "$out"; mkdir -p out
	timeout $((seconds + 120)) cargo afl fuzz -V "$seconds" $execs -i seeds/"$t" -o "$out" target/release/"$t" >"out-$t.log" 2>&1 || true
	stats=$out/default/fuzzer_stats
	if [ ! -f "$stats" ]; then echo "fuzz: $t did not run; see fuzz/out-$t.log" >&2; status=1; continue; fi
	get() { sed -n "s/^$1 *: *//p" "$stats"; }
	printf '%-14s %14s %10s %9s %8s %8s\n' "$t" "$(get execs_done)" "$(get execs_per_sec)" \
		"$(get run_time)" "$(get saved_crashes)" "$(get saved_hangs)"
	if [ "$(get saved_crashes)" != 0 ]; then
		mkdir -p crashes/"$t"; cp "$out"/default/crashes/id* crashes/"$t"/ 2>/dev/null || true
		echo "fuzz: $t crashed; inputs copied to fuzz/crashes/$t/ (add each as a regression test)" >&2; status=1
	fi
done
exit $status
