#!/usr/bin/env bash
# Mutation testing: would the test suite notice if a line of the library were wrong?
#
#     bash scripts/mutants.sh                     # every file under src/ (hours on 2 cores)
#     bash scripts/mutants.sh src/reactor/selector.rs ... # just these files
#
# cargo-mutants changes one thing at a time (a `<` into `<=`, a function body into
# `Default::default()`, a match arm deleted...), rebuilds, and runs the tests: a mutant the tests
# still pass with ("missed") marks a behaviour no test checks. Installs cargo-mutants (pinned)
# if missing. Equivalent and unreachable mutants are excluded, each with its reason, in
# .cargo/mutants.toml. The report goes to mutants.out/ (missed.txt, caught.txt, timeout.txt,
# unviable.txt); the summary is printed at the end.
#
# The tests run under cargo-nextest (on this machine kind; `cargo install --locked
# cargo-nextest` elsewhere), which runs every test binary at once instead of one after another;
# doc tests are not run, so a behaviour only a doc example checks counts as missed. Two
# mutants build and test side by side (MUTANTS_JOBS, default 2); each mutant's tests time out
# at 3 times the unmutated run, at least 60 s (a mutant that hangs the suite counts as caught).
# MUTANTS_ARGS passes more flags to cargo-mutants: `MUTANTS_ARGS=--iterate` skips the mutants
# a previous run (its mutants.out/) caught, to re-check only what it missed.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

version=27.1.0
if ! cargo mutants --version 2>/dev/null | grep -qF "$version"; then
    echo "installing cargo-mutants $version"
    cargo install --locked cargo-mutants --version "$version"
fi
if ! cargo nextest --version >/dev/null 2>&1; then
    echo "installing cargo-nextest"
    cargo install --locked cargo-nextest
fi

files=("$@")
args=()
for f in "${files[@]}"; do args+=(--file "$f"); done
[ ${#files[@]} -gt 0 ] || files=(src/)

start=$SECONDS
status=0
# shellcheck disable=SC2086 # MUTANTS_ARGS is a list of flags
cargo mutants "${args[@]}" --test-tool nextest --jobs "${MUTANTS_JOBS:-2}" \
    --timeout-multiplier 3 --minimum-test-timeout 60 --no-shuffle ${MUTANTS_ARGS:-} || status=$?
echo
echo "mutants.sh: ${files[*]}: $((SECONDS - start)) s"
for outcome in caught missed timeout unviable; do
    printf '  %-9s %5d\n' "$outcome" "$(wc -l < "mutants.out/$outcome.txt" 2>/dev/null || echo 0)"
done
if [ -s mutants.out/missed.txt ]; then
    echo "missed (a behaviour no test checks):"
    sed 's/^/  /' mutants.out/missed.txt
fi
# cargo-mutants exits 2 when mutants were missed, 3 on timeouts only; pass that on.
exit "$status"
