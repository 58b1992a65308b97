// The linear layers around their cuBLAS GEMM (src/backend/cuda/linear.rs): the epilogues
// `y += b` (+ residual) after `y = x·Wᵀ` and the bias gradient (`gelu(y + b)` is
// bias_gelu_forward in gelu.cu), and the bf16 operands of the bf16 products.
#include "common.cuh"

// `y[i] += bias[i % cols] (+ residual[i])`; `y, residual: [rows × cols]` (`residual` may be
// null), `bias: [cols]`. Grid-stride.
extern "C" __global__ void bias_residual_forward(float* y, const float* bias, const float* residual, long long n, int cols) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        y[i] += residual ? bias[i % cols] + residual[i] : bias[i % cols];
    }
}

// `db[c] += Σ_rows dy[r, c]`; one thread per column, rows in order (deterministic).
// `dy: [rows × cols]`, `db: [cols]`.
extern "C" __global__ void bias_backward(float* db, const float* dy, int rows, int cols) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= cols) return;
    float acc = 0.0f;
    for (int r = 0; r < rows; ++r) acc += dy[(size_t)r * cols + c];
    db[c] += acc;
}

// `out[i] = x[i]` rounded to bf16, to nearest with ties to even (a NaN stays a quiet NaN),
// as the bits of an `__nv_bfloat16`: the operands of the bf16 GEMMs. `x, out: [n]`.
// Grid-stride.
extern "C" __global__ void round_to_bf16(unsigned short* out, const float* x, long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        unsigned int u = __float_as_uint(x[i]);
        bool nan = (u & 0x7fffffffu) > 0x7f800000u;
        out[i] = (unsigned short)(nan ? (u >> 16) | 0x40u : (u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
    }
}
