#!/usr/bin/env bash
# The emulated CUDA kernel tests under the sanitizers (no GPU needed):
#   1. ThreadSanitizer: every kernel test must run race-free (a missing __syncthreads is a
#      data race between the emulated threads);
#   2. ThreadSanitizer must report the planted race of kernels/emu/planted.cu;
#   3. AddressSanitizer: every kernel test must run without an invalid access;
#   4. AddressSanitizer must report the planted out-of-bounds read.
# Each sanitizer rebuilds the rmx test binary (build.rs: RMX_EMU_SANITIZE); the next plain
# build rebuilds it back. Exit 0 when all four hold, 1 otherwise.
set -uo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp -d)
trap 'rm -rf "$log"' EXIT
status=0
tests=(cargo test --release --features cuda-emu --lib)

run() { # name sanitizer [cargo test args…]: runs, keeps the output in $log/name
    local name=$1 sanitizer=$2
    shift 2
    RMX_EMU_SANITIZE=$sanitizer "${tests[@]}" "$@" >"$log/$name" 2>&1
}
pass() { echo "cuda-emu-check: ok   $1"; }
fail() {
    echo "cuda-emu-check: FAIL $1" >&2
    tail -n 40 "$log/$2" >&2
    status=1
}

export TSAN_OPTIONS="suppressions=$PWD/kernels/emu/tsan.supp"
if run tsan thread backend::cuda -- --test-threads=2 && ! grep -q "WARNING: ThreadSanitizer" "$log/tsan"; then
    pass "ThreadSanitizer: kernel tests race-free ($(grep -o '[0-9]* passed' "$log/tsan"))"
else
    fail "ThreadSanitizer: kernel tests" tsan
fi
run tsan-planted thread backend::cuda::emu::tests::planted_missing_sync -- --ignored --exact
if grep -q "WARNING: ThreadSanitizer: data race" "$log/tsan-planted" && grep -q "in planted_missing_sync" "$log/tsan-planted"; then
    pass "ThreadSanitizer reports the planted race: $(grep -m1 'SUMMARY' "$log/tsan-planted" | sed 's/.*data race //')"
else
    fail "ThreadSanitizer missed the planted race" tsan-planted
fi

export ASAN_OPTIONS="detect_leaks=0"
if run asan address backend::cuda -- --test-threads=2 && ! grep -q "ERROR: AddressSanitizer" "$log/asan"; then
    pass "AddressSanitizer: kernel tests clean ($(grep -o '[0-9]* passed' "$log/asan"))"
else
    fail "AddressSanitizer: kernel tests" asan
fi
run asan-planted address backend::cuda::emu::tests::planted_oob_read -- --ignored --exact
if grep -q "ERROR: AddressSanitizer: heap-buffer-overflow" "$log/asan-planted" && grep -q "in planted_oob_read" "$log/asan-planted"; then
    pass "AddressSanitizer reports the planted read: $(grep -m1 'in planted_oob_read' "$log/asan-planted" | sed 's/^ *//')"
else
    fail "AddressSanitizer missed the planted out-of-bounds read" asan-planted
fi
exit $status
