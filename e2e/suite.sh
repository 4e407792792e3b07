#!/usr/bin/env bash
# The test suite with its summary, for `make test` (all parts) and `make check` (SUITE=check:
# the Rust tests that need nothing installed). Runs every part even when one fails, then prints
# how many tests ran, passed, failed and were skipped, and why each skip happened; exit 1 when
# anything failed. Logs: build/test-logs/.
#   bash e2e/suite.sh            unit + integration tests (cargo test --release), then e2e/test-*.sh
#   SUITE=check bash e2e/suite.sh
set -uo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
logs=${BUILD:-$repo/build}/test-logs
rm -rf "$logs"; mkdir -p "$logs"
failed=()

# cargo test prints one "test result:" line per test binary; a skipped test says "SKIP name: why".
run_cargo() {
	local name=$1; shift
	echo "== cargo test $*"
	"$@" 2>&1 | tee "$logs/$name.log"
	[ "${PIPESTATUS[0]}" = 0 ] || failed+=("$name (cargo test; see $logs/$name.log)")
}

if [ "${SUITE:-all}" = check ]; then
	run_cargo rust env CIRCULAR_HERMETIC=1 cargo test --workspace
else
	run_cargo rust cargo test --release --workspace
	for t in e2e/test-*.sh; do
		[ -e "$t" ] || continue
		echo "== $t"
		start=$SECONDS
		bash "$t" 2>&1 | tee "$logs/$(basename "$t" .sh).log"
		rc=${PIPESTATUS[0]}
		# A script whose input was not made (say the live ISO, built only on request) prints
		# "SKIP name: why" and exits 0: counted as skipped, not passed.
		status=$rc
		[ "$rc" = 0 ] && grep -q '^SKIP ' "$logs/$(basename "$t" .sh).log" && status=skip
		printf '%s\t%s\t%s\n' "$t" "$status" "$((SECONDS - start))" >>"$logs/e2e.tsv"
		[ "$rc" = 0 ] || failed+=("$t (exit $rc; see $logs/$(basename "$t" .sh).log)")
	done
fi

echo
echo "==================== summary ===================="
skips=$(grep -c '^SKIP ' "$logs/rust.log" || true)
awk -v s="$skips" '/^test result:/ {
		for (i = 1; i <= NF; i++) { v = $i + 0; k = $(i + 1); sub(/[;,]$/, "", k)
			if (k == "passed") p += v; else if (k == "failed") f += v; else if (k == "ignored") g += v }
		bins++ }
	END { printf "Rust tests (%d test binaries): %d ran: %d passed, %d skipped, %d failed; %d ignored\n",
		bins, p + f, p - s, s, f, g }' "$logs/rust.log"
# A skipped test returns early, so the harness counts it as passed; the count above moves it.
grep '^SKIP ' "$logs/rust.log" | sed 's/^SKIP [^:]*: /skipped: /' | sort | uniq -c | sed 's/^ */  /'
grep -E '^test .* \.\.\. ignored' "$logs/rust.log" | sed 's/^test /  ignored: /'
if [ -f "$logs/e2e.tsv" ]; then
	awk -F'\t' '{ n++; r = ($2 == "skip" ? "skip" : $2 == 0 ? "pass" : "FAIL"); c[r]++
			printf "  %-34s %s  %5d s\n", $1, r, $3 }
		END { printf "End-to-end scripts: %d ran: %d passed, %d failed, %d skipped (only when an opt-in input is not built; a script that cannot run its check fails)\n",
			n, c["pass"], c["FAIL"], c["skip"] }' \
		"$logs/e2e.tsv" | { tmp=$(cat); echo "$tmp" | tail -1; echo "$tmp" | sed '$d'; }
	grep -h '^SKIP ' "$logs"/test-*.log 2>/dev/null | sed 's/^SKIP [^:]*: /  skipped: /' || true
fi
if [ ${#failed[@]} -gt 0 ]; then
	printf 'FAILED: %s\n' "${failed[@]}"
	exit 1
fi
echo "all passed"
