#!/usr/bin/env bash
# The nvcc side of the CUDA backend, without a GPU: installs the pinned nvcc (.cuda/), builds
# `--features cuda`, checks that every kernel file became a fatbin holding SASS for each arch
# of RMX_CUDA_ARCHS (default sm_80 and sm_90) plus PTX of the first (cuobjdump), and prints
# ptxas's registers, spills and shared memory per kernel and arch. Exit 0 / 1 (a check failed)
# / 2 (no nvcc or the build failed).
set -euo pipefail
cd "$(dirname "$0")/.."
nvcc=$(bash scripts/install-nvcc.sh)
cuobjdump="$(dirname "$nvcc")/cuobjdump"
cargo build --release --features cuda --lib 2>&1 | grep -E "warning: rmx|^error" || true
# The newest build directory of rmx holding the embedded fatbins' index.
out=
for d in $(ls -td target/release/build/rmx-*/out 2>/dev/null); do
    if [ -f "$d/fatbins.rs" ]; then
        out=$d
        break
    fi
done
if [ -z "$out" ] || grep -q 'BUILD_PROBLEM: Option<&str> = Some' "$out/fatbins.rs"; then
    echo "cuda-build-check: the kernels were not built${out:+: $(grep -o 'Some(.*)' "$out/fatbins.rs")}" >&2
    exit 2
fi
IFS=';, ' read -r -a archs <<<"${RMX_CUDA_ARCHS:-80;90}"
status=0
for src in kernels/*.cu; do
    stem=$(basename "$src" .cu)
    fatbin="$out/$stem.fatbin"
    elf=$("$cuobjdump" --list-elf "$fatbin" 2>&1 || true)
    ptx=$("$cuobjdump" --list-ptx "$fatbin" 2>&1 || true)
    for a in "${archs[@]}"; do
        a=${a#sm_}
        grep -q "sm_$a.cubin" <<<"$elf" || { echo "cuda-build-check: FAIL $stem.fatbin has no sm_$a code" >&2; status=1; }
    done
    grep -q "sm_${archs[0]#sm_}.ptx" <<<"$ptx" || { echo "cuda-build-check: FAIL $stem.fatbin has no compute_${archs[0]#sm_} PTX" >&2; status=1; }
done
[ $status = 0 ] && echo "cuda-build-check: ok   $(ls kernels/*.cu | wc -l) kernel files, each with SASS for ${archs[*]/#/sm_} and PTX for compute_${archs[0]#sm_}"
# ptxas -v, one line per kernel and arch.
awk '
    /Compiling entry function/ { match($0, /\x27[^\x27]+\x27/); k = substr($0, RSTART + 1, RLENGTH - 2); match($0, /sm_[0-9]+/); a = substr($0, RSTART, RLENGTH) }
    /spill stores/ { split($0, f, ","); st = f[2]; ld = f[3]; gsub(/[^0-9]/, "", st); gsub(/[^0-9]/, "", ld) }
    /Used [0-9]+ registers/ { match($0, /Used [0-9]+ registers/); r = substr($0, RSTART + 5, RLENGTH - 15); s = 0; if (match($0, /[0-9]+ bytes smem/)) s = substr($0, RSTART, RLENGTH - 11); printf "%-28s %-6s %4d regs  %3d spill st  %3d spill ld  %5d B smem\n", k, a, r, st, ld, s }
' "$out/ptxas.txt" | sort
exit $status
