#!/usr/bin/env bash
# Set up and run rmx end to end on the default model: fetch the model (PyPI), build rmx,
# index the example relation descriptions, and answer the example queries.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/fetch-model.sh
cargo build --release
rmx=target/release/rmx
out=$(mktemp -d)
$rmx index build examples/relations.jsonl -o "$out/relations.rmx"
$rmx index inspect "$out/relations.rmx"
echo "--- rmx query -k 2 < examples/queries.jsonl"
$rmx query --index "$out/relations.rmx" -k 2 < examples/queries.jsonl
rm -rf "$out"
