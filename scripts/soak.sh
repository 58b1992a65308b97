#!/usr/bin/env bash
# Soak of the C library: THREADS pthreads (default 8) query one engine (the default model, an
# index of examples/relations.jsonl) for SECONDS (default 600) of mixed rmx_query and
# rmx_query_batch calls over examples/queries.jsonl. Prints the resident set size and the calls
# made every 10 s, then a summary line; exits 1 when an answer differs from the single-threaded
# one or a call fails. A benchmark, not a CI test (it loads every core for its whole run).
#
#   scripts/soak.sh [SECONDS] [THREADS]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-600}
threads=${2:-8}
work=target/soak
mkdir -p "$work"
cargo build --release --quiet
cc -std=c11 -D_DEFAULT_SOURCE -O2 tests/c/capi_test.c -Iinclude target/release/librmx.a -lpthread -ldl -lm -o "$work/capi_test"
target/release/rmx index build examples/relations.jsonl -o "$work/index" 2>/dev/null
# capi_test's instance lines: byte spans of the head and tail strings, a tab, the text (the
# queries given as text and entity strings).
python3 - examples/queries.jsonl > "$work/instances.txt" <<'PY'
import json, sys
for line in open(sys.argv[1], encoding="utf-8"):
    q = json.loads(line)
    if "text" not in q:
        continue
    text = q["text"].encode()
    spans = [(text.find(q[e].encode()), len(q[e].encode())) for e in ("head", "tail")]
    print(" ".join(f"{s} {s + n}" for s, n in spans) + "\t" + q["text"])
PY
"$work/capi_test" soak - "$work/index" 3 "$work/instances.txt" "$threads" "$seconds"
