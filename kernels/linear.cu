// The epilogues of the linear layers around their cuBLAS GEMM (src/backend/cuda/linear.rs):
// `y += b` (+ residual) after `y = x·Wᵀ`, and the bias gradient. (`gelu(y + b)` is
// bias_gelu_forward in gelu.cu.)
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
