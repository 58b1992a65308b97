#!/usr/bin/env bash
# The prepared check for the day a GPU is lent (H100/H200: nvcc 13.0, driver 580, PyTorch,
# compute-sanitizer; no Rust toolchain, no network).
#
#   bash scripts/gpu-check.sh pack            # here: build what the GPU machine runs into
#                                             # target/gpu-check/ (carry that folder)
#   bash scripts/gpu-check.sh run             # on the GPU machine
#   bash scripts/gpu-check.sh run --emulate   # here: the same steps on the emulator (dry run)
#
# What runs today: every kernel test on the GPU against the CPU ops (the test binary with
# RMX_TEST_DEVICE=cuda), then the same tests under compute-sanitizer memcheck and racecheck.
# What is pending: the encoder, training-step and throughput comparisons with PyTorch need a
# CUDA implementation of the device seam (backend::Backend) to run the model on these ops;
# the script says so.
# Results go to stdout and to ${OUT:-target/gpu-check}/gpu-check.txt. Exit 0 when every step
# that ran passed, 1 otherwise.
set -uo pipefail
cd "$(dirname "$0")/.."
bundle=target/gpu-check

pack() {
    set -e
    bash scripts/install-nvcc.sh >/dev/null
    local bin
    bin=$(cargo test --release --features cuda,cuda-emu --lib --no-run --message-format=json 2>/dev/null |
        python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "rmx" and m["profile"]["test"]:
        print(m["executable"])')
    [ -x "$bin" ] || { echo "gpu-check: the test binary was not built" >&2; exit 2; }
    mkdir -p "$bundle"
    cp "$bin" "$bundle/rmx-tests"
    strip --strip-debug "$bundle/rmx-tests" 2>/dev/null || true
    echo "gpu-check: packed $bundle/rmx-tests ($(du -h "$bundle/rmx-tests" | cut -f1)); carry $bundle"
}

run() {
    local emulate=0
    [ "${1:-}" = "--emulate" ] && emulate=1
    local out=${OUT:-$bundle}
    mkdir -p "$out"
    local report="$out/gpu-check.txt" status=0
    : >"$report"
    say() { echo "$*" | tee -a "$report"; }
    step() { # name command…: runs, logs, reports
        local name=$1
        shift
        if "$@" >"$out/$name.log" 2>&1; then
            say "ok      $name ($(grep -o '[0-9]* passed' "$out/$name.log" | tail -1))"
        else
            say "FAILED  $name (see $name.log)"
            tail -n 30 "$out/$name.log" | tee -a "$report"
            status=1
        fi
    }
    [ -x "$bundle/rmx-tests" ] || { echo "gpu-check: no $bundle/rmx-tests: run 'bash scripts/gpu-check.sh pack' first" >&2; exit 2; }
    local tests=("$bundle/rmx-tests" backend::cuda --test-threads=1)
    if [ $emulate = 1 ]; then
        say "gpu-check: EMULATED dry run (no GPU): kernels run on the CPU emulator"
        step kernel-tests "${tests[@]}"
        for tool in memcheck racecheck; do
            say "dry run: would run compute-sanitizer --tool $tool --error-exitcode 1 ${tests[*]} with RMX_TEST_DEVICE=cuda"
        done
    else
        say "gpu-check: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -1)"
        # cuBLAS from the CUDA install or from PyTorch's wheels, for cudarc's dlopen.
        local libs
        libs=$( (ls -d /usr/local/cuda*/lib64 2>/dev/null; python3 -c 'import site; print("\n".join(site.getsitepackages()))' 2>/dev/null |
            while read -r sp; do find "$sp/nvidia" -name 'libcublas.so*' -printf '%h\n' 2>/dev/null; done) | sort -u | paste -sd:)
        export LD_LIBRARY_PATH="${libs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
        export RMX_TEST_DEVICE=cuda
        step kernel-tests "${tests[@]}"
        if command -v compute-sanitizer >/dev/null; then
            for tool in memcheck racecheck; do
                step "compute-sanitizer-$tool" compute-sanitizer --tool "$tool" --error-exitcode 1 "${tests[@]}"
            done
        else
            say "FAILED  compute-sanitizer is not on PATH"
            status=1
        fi
    fi
    say "pending (needs a CUDA backend::Backend): encoder forward vs the PyTorch goldens, one training step, throughput and latency vs PyTorch"
    exit $status
}

case "${1:-}" in
pack) pack ;;
run) run "${2:-}" ;;
*)
    echo "usage: bash scripts/gpu-check.sh pack | run [--emulate]" >&2
    exit 2
    ;;
esac
