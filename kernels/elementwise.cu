// Element-wise layers without weights (src/backend/cuda/elementwise.rs): `y += a·x` (the
// residual sum, and the gradient reversal layer's backward with `a = −λ`), filling, `tanh`
// forward and backward, and the strided copy that puts parts side by side in rows and takes
// them apart.
#include "common.cuh"

#define GRID_STRIDE(i, n) for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < (n); i += (long long)gridDim.x * blockDim.x)

// `y += a · x`, `x, y: [n]`.
extern "C" __global__ void axpy(float* y, const float* x, long long n, float a) {
    GRID_STRIDE(i, n) y[i] += a * x[i];
}

// `x = v`, `x: [n]`.
extern "C" __global__ void fill(float* x, long long n, float v) {
    GRID_STRIDE(i, n) x[i] = v;
}

// `x ← tanh(x)` in place, `x: [n]`.
extern "C" __global__ void tanh_forward(float* x, long long n) {
    GRID_STRIDE(i, n) x[i] = tanhf(x[i]);
}

// From the output `y`: `dx += dy ⊙ (1 − y²)`, all `[n]`.
extern "C" __global__ void tanh_backward(float* dx, const float* y, const float* dy, long long n) {
    GRID_STRIDE(i, n) dx[i] += dy[i] * (1.0f - y[i] * y[i]);
}

// `dst[r·dst_ld + c] = src[r·src_ld + c]` for `r < rows`, `c < cols` (a block of columns of a
// row-major matrix copied into another).
extern "C" __global__ void copy_columns(float* dst, long long dst_ld, const float* src, long long src_ld, long long rows, int cols) {
    GRID_STRIDE(i, rows * cols) {
        long long r = i / cols, c = i % cols;
        dst[r * dst_ld + c] = src[r * src_ld + c];
    }
}
