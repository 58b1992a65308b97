#!/usr/bin/env bash
# Set up and run rmx end to end on the default model: fetch the model, build, and embed
# a few sentences.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/fetch-model.sh
cargo build --release
printf '%s\n' \
  '{"text":"Marie Curie married Pierre Curie in 1895."}' \
  '{"text":"The Eiffel Tower is located in Paris."}' |
  target/release/rmx embed | cut -c1-120
