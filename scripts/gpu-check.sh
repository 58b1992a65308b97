#!/usr/bin/env bash
# The prepared check for the day a GPU is lent (H100/H200: nvcc 13.0, driver 580, PyTorch,
# compute-sanitizer; no Rust toolchain, no network).
#
#   bash scripts/gpu-check.sh pack            # here: build what the GPU machine runs into
#                                             # target/gpu-check/ (carry that folder)
#   bash scripts/gpu-check.sh run             # on the GPU machine
#   bash scripts/gpu-check.sh run --emulate   # here: the same steps on the emulator (dry run;
#                                             # pack with RMX_GPU_CHECK_EMULATE=1 first)
#
# What runs, in order:
#   kernel-tests       every kernel and every Backend op on the GPU against the CPU ops (the
#                      library's test binary, RMX_TEST_DEVICE=cuda);
#   golden             the tiny BERT's forward and one RE-Matching training step through the
#                      CUDA backend against the PyTorch goldens in tests/fixtures;
#   memcheck/racecheck the kernel tests under compute-sanitizer;
#   compare            benches/gpu_compare.py: encoder throughput (256 x 64) and one-sentence
#                      latency vs PyTorch fp32 / bf16 / fp16 on the same GPU, the training step
#                      (batch 128) vs PyTorch eager fp32, embeddings and losses cuda vs cpu.
# Results go to stdout and to ${OUT:-target/gpu-check}/gpu-check.txt (+ gpu-compare.json). Exit 0
# when every step passed, 1 otherwise, 2 when the bundle is missing.
set -uo pipefail
cd "$(dirname "$0")/.."
bundle=target/gpu-check

# The path of the test executable `target` (lib or an integration test) cargo built with `features`.
test_binary() {
    local features=$1 target=$2
    local select=(--lib)
    [ "$target" != lib ] && select=(--test "$target")
    cargo test --release --features "$features" "${select[@]}" --no-run --message-format=json 2>/dev/null |
        python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        print(m["executable"])' | tail -1
}

pack() {
    set -e
    local features=cuda,cuda-emu rmx_features=cuda
    if [ "${RMX_GPU_CHECK_EMULATE:-0}" = 1 ]; then
        rmx_features=cuda-emu # the dry run's rmx computes `--device cuda` on the emulator
    else
        bash scripts/install-nvcc.sh >/dev/null
    fi
    mkdir -p "$bundle/model-files"
    for t in lib encoder_golden train_step; do
        local bin
        bin=$(test_binary "$features" "$t")
        [ -x "$bin" ] || { echo "gpu-check: the $t test binary was not built" >&2; exit 2; }
        cp "$bin" "$bundle/test-$t"
    done
    cargo build --release --features "$rmx_features" --bin rmx
    cp target/release/rmx "$bundle/rmx"
    strip --strip-debug "$bundle"/test-* "$bundle/rmx" 2>/dev/null || true
    # The model's shape and tokenizer (not its weights: gpu_compare.py makes random ones there).
    local model=${RMX_MODEL:-$HOME/.local/share/rmx/models/all-MiniLM-L6-v2}
    for f in config.json tokenizer.json tokenizer_config.json special_tokens_map.json vocab.txt sentence_bert_config.json; do
        cp "$model/$f" "$bundle/model-files/"
    done
    # 6 x 128 training sentences of the reduced protocol's training relations, and their descriptions.
    local data=../shared/data
    python3 - "$data" "$bundle/train.json" <<'PY'
import json, random, sys
data, out = sys.argv[1], sys.argv[2]
wiki = json.load(open(f"{data}/fewrel/val_wiki.json"))
test = json.load(open(f"{data}/rematching/rel2id/fewrel_rel2id/fewrel_rel2id_5_ori.json"))["test"]
pool = [(r, x) for r, xs in wiki.items() if r not in test for x in xs]
random.Random(0).shuffle(pool)
subset = {}
for r, x in pool[:768]:
    subset.setdefault(r, []).append(x)
json.dump(subset, open(out, "w"))
PY
    cp "$data/rematching/fewrel/relation_description/relation_description_addsynonym_processed.json" "$bundle/descriptions.json"
    cp benches/gpu_compare.py benches/compare_train.py "$bundle/"
    echo "gpu-check: packed $bundle ($(du -sh "$bundle" | cut -f1)); carry it"
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
            local passed
            passed=$(grep -o '[0-9]* passed' "$out/$name.log" | awk '{n += $1} END {print n + 0}')
            say "ok      $name$([ "$passed" -gt 0 ] && echo " ($passed tests passed)")"
        else
            say "FAILED  $name (see $name.log)"
            tail -n 30 "$out/$name.log" | tee -a "$report"
            status=1
        fi
    }
    [ -x "$bundle/test-lib" ] && [ -x "$bundle/rmx" ] || { echo "gpu-check: no bundle in $bundle: run 'bash scripts/gpu-check.sh pack' first" >&2; exit 2; }
    export RMX_FIXTURES=$PWD/tests/fixtures
    local kernels=("$bundle/test-lib" backend:: --test-threads=1)
    local golden=(bash -c "'$bundle/test-encoder_golden' on_cuda --test-threads=1 && '$bundle/test-train_step' on_cuda --test-threads=1")
    local compare=(python3 "$bundle/gpu_compare.py" --rmx "$bundle/rmx" --config "$bundle/model-files/config.json" --tokenizer "$bundle/model-files"
        --data "$bundle/train.json" --descriptions "$bundle/descriptions.json" --out "$out")
    if [ $emulate = 1 ]; then
        say "gpu-check: EMULATED dry run (no GPU): kernels run on the CPU emulator"
        step kernel-tests "${kernels[@]}"
        step golden "${golden[@]}"
        for tool in memcheck racecheck; do
            say "dry run: would run compute-sanitizer --tool $tool --error-exitcode 1 ${kernels[*]} with RMX_TEST_DEVICE=cuda"
        done
        step compare "${compare[@]}" --tiny --torch-device cpu
    else
        say "gpu-check: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -1)"
        # cuBLAS from the CUDA install or from PyTorch's wheels, for cudarc's dlopen.
        local libs
        libs=$( (ls -d /usr/local/cuda*/lib64 2>/dev/null; python3 -c 'import site; print("\n".join(site.getsitepackages()))' 2>/dev/null |
            while read -r sp; do find "$sp/nvidia" -name 'libcublas.so*' -printf '%h\n' 2>/dev/null; done) | sort -u | paste -sd:)
        export LD_LIBRARY_PATH="${libs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
        export RMX_TEST_DEVICE=cuda
        step kernel-tests "${kernels[@]}"
        step golden "${golden[@]}"
        if command -v compute-sanitizer >/dev/null; then
            for tool in memcheck racecheck; do
                step "compute-sanitizer-$tool" compute-sanitizer --tool "$tool" --error-exitcode 1 "${kernels[@]}"
            done
        else
            say "FAILED  compute-sanitizer is not on PATH"
            status=1
        fi
        step compare "${compare[@]}"
    fi
    [ -f "$out/gpu-compare.json" ] && say "compare: $(python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))["goals"]))' "$out/gpu-compare.json")"
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
