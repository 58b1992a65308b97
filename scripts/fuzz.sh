#!/usr/bin/env bash
# Coverage-guided fuzzing (cargo-fuzz, libFuzzer, AddressSanitizer) of one parser of outside
# input for a given time:
#
#   scripts/fuzz.sh TARGET SECONDS        TARGET: descriptions | query_lines | index_file |
#                                                 model_config | tokenizer | checkpoint_settings
#   scripts/fuzz.sh all SECONDS           each target in turn, SECONDS each
#
# Needs the nightly toolchain and cargo-fuzz (`rustup toolchain install nightly`,
# `cargo install cargo-fuzz`). The seed corpus is generated here on first use, from the
# repository's examples and fixtures and small slices of ../shared/data when present (nothing
# of it is committed); the corpus grows in fuzz/corpus/TARGET, crashes land in
# fuzz/artifacts/TARGET (each must become a regression test in the normal suite). Prints the
# executions and the outcome; exits non-zero when the target crashed.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
targets=(descriptions query_lines index_file model_config tokenizer checkpoint_settings)
[ $# -eq 2 ] || { echo "usage: scripts/fuzz.sh TARGET|all SECONDS (targets: ${targets[*]})" >&2; exit 2; }
if [ "$1" = all ]; then
    failed=0
    for t in "${targets[@]}"; do "$0" "$t" "$2" || failed=1; done
    exit $failed
fi
target=$1
seconds=$2
shared=$root/../shared/data
corpus=$root/fuzz/corpus/$target

seed() { # seed NAME < bytes
    cat > "$corpus/seed-$1"
}

seed_corpus() {
    mkdir -p "$corpus"
    case $target in
    descriptions)
        seed relations.jsonl < examples/relations.jsonl
        if [ -d "$shared" ]; then
            python3 - "$shared" "$corpus" <<'PY'
import json, sys
shared, out = sys.argv[1:]
rematching = json.load(open(f"{shared}/rematching/fewrel/relation_description/relation_description_processed.json"))
json.dump(rematching[:3], open(f"{out}/seed-rematching.json", "w"))
pid2name = json.load(open(f"{shared}/fewrel/pid2name.json"))
json.dump(dict(list(pid2name.items())[:4]), open(f"{out}/seed-pid2name.json", "w"))
PY
        fi
        ;;
    query_lines)
        n=0
        while IFS= read -r line; do
            n=$((n + 1))
            printf '%s' "$line" | seed "query-$n"
        done < examples/queries.jsonl
        printf '%s' '{"text":"Marie Curie married Pierre Curie.","head":[0,11],"tail":[20,32]}' | seed spans
        if [ -d "$shared" ]; then
            python3 - "$shared" "$corpus" <<'PY'
import json, sys
shared, out = sys.argv[1:]
wiki = json.load(open(f"{shared}/fewrel/val_wiki.json"))
for i, (relation, instances) in enumerate(list(wiki.items())[:3]):
    open(f"{out}/seed-fewrel-{i}", "w").write(json.dumps(instances[0]))
PY
        fi
        ;;
    index_file)
        cargo build --release --quiet --bin rmx
        tmp=$(mktemp -d)
        for how in "--search exact" "--search hnsw --precision f16"; do
            # shellcheck disable=SC2086
            target/release/rmx index build examples/relations.jsonl -o "$tmp/index" --model tests/fixtures/tiny_bert $how 2>/dev/null
            name=$(echo "$how" | tr -d ' -')
            for mode in 0 1 2; do
                { printf "\\x0$mode"; cat "$tmp/index/index.rmx"; } | seed "$name-$mode"
            done
        done
        rm -rf "$tmp"
        ;;
    model_config)
        { cat tests/fixtures/tiny_bert/config.json; printf '\0'; cat tests/fixtures/tiny_bert/sentence_bert_config.json; } | seed tiny
        ;;
    tokenizer)
        seed tiny < tests/fixtures/tiny_bert/tokenizer.json
        ;;
    checkpoint_settings)
        printf '%s' '{"format": 1, "alpha": 0.33, "description_encoder": "."}' | seed format1
        printf '%s' '{"format": 2, "alpha": 0.33, "description_encoder": ".", "zero_shot_weight": 0.2}' | seed format2
        printf '%s' '{"format": 3, "alpha": 0.4, "description_encoder": ".", "description_style": "keyword_list", "zero_shot_weight": 0.2, "zero_shot_encoder": "."}' | seed format3
        ;;
    *)
        echo "unknown target $target (targets: ${targets[*]})" >&2
        exit 2
        ;;
    esac
}

[ -d "$corpus" ] && [ -n "$(ls -A "$corpus")" ] || seed_corpus
cd fuzz
log=$(mktemp)
set +e
cargo +nightly fuzz run -O "$target" "corpus/$target" -- -max_total_time="$seconds" -rss_limit_mb=4096 -timeout=20 -print_final_stats=1 2> "$log"
status=$?
set -e
executions=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | grep -o '[0-9]*$' || true)
coverage=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || true)
if [ $status -eq 0 ]; then
    echo "fuzz $target: ${seconds}s, ${executions:-?} executions, coverage ${coverage:-?} edges, no crash"
else
    tail -60 "$log" >&2
    echo "fuzz $target: CRASH after ${executions:-?} executions (exit $status); reproducer in fuzz/artifacts/$target/" >&2
fi
rm -f "$log"
exit $status
