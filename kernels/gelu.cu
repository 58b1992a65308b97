// GELU in the exact erf form, `gelu(x) = x · ½ · (1 + erf(x / √2))` (no fast math).
#include "common.cuh"

#define RMX_FRAC_1_SQRT_2 0.70710678118654752f
#define RMX_INV_SQRT_2PI 0.3989422804014327f

__device__ __forceinline__ float gelu(float x) { return x * 0.5f * (1.0f + erff(x * RMX_FRAC_1_SQRT_2)); }

// `y = gelu(x + bias[column])` element-wise; `x, y: [rows × cols]` (`y` may be `x`),
// `bias: [cols]` or null (plain GELU).
extern "C" __global__ void bias_gelu_forward(float* y, const float* x, const float* bias, long long n, int cols) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        float v = bias ? x[i] + bias[i % cols] : x[i];
        y[i] = gelu(v);
    }
}

// `dz += dy ⊙ gelu'(z)`, `gelu'(z) = ½(1 + erf(z/√2)) + z · e^(−z²/2) / √(2π)`.
// `z, dy, dz: [n]` (`z`: the saved pre-activation).
extern "C" __global__ void gelu_backward(float* dz, const float* z, const float* dy, long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        float v = z[i];
        float cdf = 0.5f * (1.0f + erff(v * RMX_FRAC_1_SQRT_2));
        float pdf = RMX_INV_SQRT_2PI * expf(-0.5f * v * v);
        dz[i] += dy[i] * (cdf + v * pdf);
    }
}
