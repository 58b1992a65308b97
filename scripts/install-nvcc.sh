#!/usr/bin/env bash
# Installs the pinned CUDA compiler from PyPI into .cuda/ (ignored by git); idempotent.
#
# Why the pin: the lent H100/H200 machines run driver 580 (CUDA 13.0), which cannot JIT the
# PTX 9.5 of nvcc 13.5; nvcc, nvvm and crt must move together (nvcc alone still pulls the
# newest nvvm). The runtime headers (cuda_runtime.h, which nvcc includes in every compile)
# come from nvidia-cuda-runtime. cuobjdump (only to list a fatbin's architectures) starts at 13.2 on PyPI;
# it reads 13.0 fatbins.
#
# Prints the nvcc path on stdout. build.rs finds it there without being told
# (`.cuda/nvidia/cu13/bin/nvcc`); NVCC=… overrides.
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=.cuda
cuda_version=13.0.88
cccl_version=13.0.85
cuobjdump_version=13.2.51
nvcc="$prefix/nvidia/cu13/bin/nvcc"
stamp="$prefix/.installed-$cuda_version"
if [ ! -f "$stamp" ] || [ ! -x "$nvcc" ]; then
    echo "install-nvcc: installing nvcc $cuda_version into $prefix/" >&2
    python3 -m pip install --quiet --disable-pip-version-check --no-deps --upgrade --target "$prefix" \
        "nvidia-cuda-nvcc==$cuda_version" "nvidia-nvvm==$cuda_version" "nvidia-cuda-crt==$cuda_version" \
        "nvidia-cuda-runtime==$cuda_version" \
        "nvidia-cuda-cccl==$cccl_version" "nvidia-cuda-cuobjdump==$cuobjdump_version" >&2
    touch "$stamp"
fi
"$nvcc" --version | grep -q "release 13.0" || {
    echo "install-nvcc: $nvcc is not release 13.0" >&2
    exit 2
}
realpath "$nvcc"
