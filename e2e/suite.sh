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
		printf '%s\t%s\t%s\n' "$t" "$rc" "$((SECONDS - start))" >>"$logs/e2e.tsv"
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
	awk -F'\t' '{ n++; if ($2 == 0) p++; printf "  %-34s %s  %5d s\n", $1, ($2 == 0 ? "pass" : "FAIL"), $3 }
		END { printf "End-to-end scripts: %d ran: %d passed, %d failed, 0 skipped (a script that cannot run its check fails)\n", n, p, n - p }' \
		"$logs/e2e.tsv" | { tmp=$(cat); echo "$tmp" | tail -1; echo "$tmp" | sed '$d'; }
fi
if [ ${#failed[@]} -gt 0 ]; then
	printf 'FAILED: %s\n' "${failed[@]}"
	exit 1
fi
echo "all passed"
