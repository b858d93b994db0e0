#!/usr/bin/env bash
# Coverage-guided fuzzing of Warren's parsers with libFuzzer and AddressSanitizer (see Fuzz/README.md).
#
#   scripts/fuzz.sh TARGET [SECONDS]   fuzz one target (default 60 s)
#   scripts/fuzz.sh --all [SECONDS]    every target in turn (what `make fuzz` runs)
#   scripts/fuzz.sh --list             the targets
#   scripts/fuzz.sh --build            only build .build-fuzz/debug/warren-fuzz
#   scripts/fuzz.sh --seeds            rewrite Fuzz/corpus/ from real messages
#
# The binary is built in .build-fuzz with -sanitize=fuzzer,address; it is never part of
# `swift build` or `make test`. New corpus inputs go to .build-fuzz/corpus/TARGET (the seeds in
# Fuzz/corpus/TARGET are read, never written). An input that crashes a target, leaks, hangs
# (-timeout) or allocates past -malloc_limit_mb is copied to Fuzz/crashes/TARGET/, where
# FuzzRegressionTests (part of `make test`) feeds it to the same check: commit it with the fix.
# Each run appends its figures to .build-fuzz/fuzz-stats.tsv.
set -euo pipefail
cd "$(dirname "$0")/.."

SWIFT=${SWIFT:-swift}
BIN=.build-fuzz/debug/warren-fuzz
TIMEOUT=${FUZZ_TIMEOUT:-10}          # seconds one input may take
MALLOC_MB=${FUZZ_MALLOC_MB:-512}     # the largest single allocation (and total RSS is capped at 2 GB)
MAX_LEN=${FUZZ_MAX_LEN:-65536}

targets() { ls Fuzz/corpus; }

build() {
    echo "fuzz: building $BIN (address sanitizer + libFuzzer; the first build takes a while)" >&2
    # shellcheck disable=SC2086
    WARREN_FUZZ=1 $SWIFT build --scratch-path .build-fuzz -Xswiftc -sanitize=fuzzer,address --product warren-fuzz
}

run() {
    local target=$1 seconds=$2
    if [ ! -d "Fuzz/corpus/$target" ]; then
        echo "fuzz: \"$target\" is not a target; the targets are: $(targets | tr '\n' ' ')" >&2
        exit 2
    fi
    local work=.build-fuzz/corpus/$target artifacts=.build-fuzz/crashes/$target log=.build-fuzz/logs/$target.log
    mkdir -p "$work" "$artifacts" .build-fuzz/logs "Fuzz/crashes/$target"
    local dict=()
    [ -f "Fuzz/dict/$target.dict" ] && dict=(-dict="Fuzz/dict/$target.dict")
    echo "fuzz: $target for ${seconds}s (log: $log)" >&2
    local status=0
    # Swift's own backtracer would run inside ASan after a fatal error; libFuzzer prints the stack.
    FUZZ_TARGET=$target SWIFT_BACKTRACE=enable=no ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} "$BIN" "$work" "Fuzz/corpus/$target" "${dict[@]}" \
        -max_total_time="$seconds" -timeout="$TIMEOUT" -malloc_limit_mb="$MALLOC_MB" -rss_limit_mb=2048 \
        -max_len="$MAX_LEN" -artifact_prefix="$artifacts/" -print_final_stats=1 >"$log" 2>&1 || status=$?
    local execs cov ft corpus
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | cut -d' ' -f2)
    ft=$(grep -oE 'ft: [0-9]+' "$log" | tail -1 | cut -d' ' -f2)
    corpus=$(grep -oE 'corp: [0-9]+/[0-9]+[a-zA-Z]*' "$log" | tail -1 | cut -d' ' -f2)
    printf '%s\t%s\t%ss\texecs=%s\tcov=%s\tft=%s\tcorpus=%s\tstatus=%s\n' "$(date -u +%FT%TZ)" "$target" "$seconds" \
        "${execs:-?}" "${cov:-?}" "${ft:-?}" "${corpus:-?}" "$status" | tee -a .build-fuzz/fuzz-stats.tsv
    if [ "$status" -ne 0 ]; then
        local found=0
        for input in "$artifacts"/*; do
            [ -f "$input" ] || continue
            cp "$input" "Fuzz/crashes/$target/" && found=1
            echo "fuzz: $target: saved $(basename "$input") in Fuzz/crashes/$target/ (a regression test input now)" >&2
        done
        rm -f "$artifacts"/*
        grep -E 'ERROR|Fatal error|SUMMARY|fuzz target' "$log" | head -5 >&2 || true
        [ "$found" -eq 1 ] || echo "fuzz: $target exited with $status and saved no input; see $log" >&2
        return 1
    fi
}

case "${1:-}" in
    ""|-h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    --list) targets; exit 0 ;;
    --build) build; exit 0 ;;
    --seeds)
        build
        rm -rf Fuzz/corpus.new
        WARREN_FUZZ_WRITE_SEEDS=Fuzz/corpus.new "$BIN"
        rm -rf Fuzz/corpus && mv Fuzz/corpus.new Fuzz/corpus
        exit 0 ;;
    --all)
        seconds=${2:-${FUZZ_SECONDS:-60}}
        build
        failed=()
        for target in $(targets); do run "$target" "$seconds" || failed+=("$target"); done
        if [ "${#failed[@]}" -gt 0 ]; then
            echo "fuzz: findings in: ${failed[*]}; their inputs are in Fuzz/crashes/" >&2
            exit 1
        fi ;;
    *)
        build
        run "$1" "${2:-${FUZZ_SECONDS:-60}}" ;;
esac
