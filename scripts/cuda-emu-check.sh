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

# check sanitizer report-line planted-kernel: the kernel tests must run clean under the
# sanitizer, and the planted bug must be reported with its kernel's name.
check() {
    local sanitizer=$1 report=$2 planted=$3
    if run "$sanitizer" "$sanitizer" backend::cuda -- --test-threads=2 && ! grep -q "$report" "$log/$sanitizer"; then
        pass "$sanitizer sanitizer: kernel tests clean ($(grep -o '[0-9]* passed' "$log/$sanitizer"))"
    else
        fail "$sanitizer sanitizer: kernel tests" "$sanitizer"
    fi
    run "$planted" "$sanitizer" "backend::cuda::emu::tests::$planted" -- --ignored --exact
    if grep -q "$report" "$log/$planted" && grep -q "in $planted" "$log/$planted"; then
        pass "$sanitizer sanitizer reports the planted bug: $(grep -m1 "in $planted" "$log/$planted" | sed 's/^ *//')"
    else
        fail "$sanitizer sanitizer missed the planted bug in $planted" "$planted"
    fi
}

TSAN_OPTIONS="suppressions=$PWD/kernels/emu/tsan.supp" check thread "WARNING: ThreadSanitizer: data race" planted_missing_sync
ASAN_OPTIONS="detect_leaks=0" check address "ERROR: AddressSanitizer" planted_oob_read
exit $status
