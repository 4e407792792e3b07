#!/usr/bin/env bash
# CI's mutation check: cargo-mutants on the lines the last change touched (HEAD against its
# first parent, so a merge counts as one change), in place and in the release profile, so it
# reuses what `make test` just built. A missed mutant fails CI: give it a test, or list it as
# equivalent in docs/TESTING.md and exclude it in .cargo/mutants.toml. The run has a budget
# (MUTANTS_CI_MINUTES, default 30): what it could not reach in time is printed, not failed.
# The tree is changed in place while it runs: use it on a CI clone, not on a work tree.
set -uo pipefail
cd "$(dirname "$0")/.."
base=$(git rev-parse -q --verify HEAD^1) || { echo "mutants-ci: no parent commit; nothing to compare"; exit 0; }
minutes=${MUTANTS_CI_MINUTES:-30}
mkdir -p build
git diff "$base" HEAD > build/mutants.diff
if ! git diff --name-only "$base" HEAD | grep -q '\.rs$'; then
	echo "mutants-ci: the last change touches no Rust source; nothing to mutate"
	exit 0
fi
command -v cargo-mutants >/dev/null || cargo install --locked cargo-mutants
echo "== mutants in the last change ($(git log -1 --format=%h HEAD) against $(git log -1 --format=%h "$base"); budget $minutes min)"
rc=0
timeout --signal=INT "$((minutes * 60))" cargo mutants --no-shuffle --in-place --profile release --baseline skip \
	--in-diff build/mutants.diff -o build || rc=$?
out=build/mutants.out
for kind in caught missed timeout unviable; do
	n=0; [ -f "$out/$kind.txt" ] && n=$(wc -l <"$out/$kind.txt")
	printf '%s: %s  ' "$kind" "$n"
done
echo
# cargo-mutants: 0 all caught, 2 some missed, 3 some timed out (a hang is a detection), 1 usage.
case $rc in
0|3) echo "mutants-ci: PASS" ;;
124|130)
	git checkout -- .   # an interrupted in-place run may leave a mutant in the tree
	if [ -s "$out/missed.txt" ]; then cat "$out/missed.txt"; echo "mutants-ci: FAIL: missed mutants"; exit 1; fi
	echo "mutants-ci: PASS so far: the budget of $minutes min ran out; the mutants not reached were not checked" ;;
2) echo "mutants-ci: FAIL: missed mutants (each needs a test, or a reason in docs/TESTING.md):"; cat "$out/missed.txt"; exit 1 ;;
*) echo "mutants-ci: FAIL: cargo mutants exited $rc"; exit 1 ;;
esac
