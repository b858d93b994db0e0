#!/usr/bin/env bash
# Runs the whole test suite one test at a time and, when it fails, repeats the failing tests' lines
# at the very end, so that the last lines of a CI log name what failed and where.
set -uo pipefail
cd "$(dirname "$0")/.."
SWIFT="${SWIFT:-swift}"
log="$(mktemp -t warren-test.XXXXXX)"
trap 'rm -f "$log"' EXIT

# One test at a time: on two cores, tests that start real processes and move real bytes time out
# when they all run at once.
"$SWIFT" test --skip-build --no-parallel 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
if [ "$status" -ne 0 ]; then
    echo
    echo "== failed (swift test exit $status) =="
    # Swift Testing marks failures with ✘ and XCTest with "error:"; the run's own total line is last.
    grep -E '✘|: error: |failed \(' "$log" | grep -v '^✘ Test run with' | tail -n 15
    grep -E '^✘ Test run with' "$log" | tail -n 1
fi
exit "$status"
