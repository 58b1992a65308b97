// Training losses: RE-Matching's margin loss with the hardest in-batch negative, its
// contrastive (InfoNCE) alternative, and softmax cross-entropy. Rows are short (one per sample), so one thread per row walks its columns in
// the CPU op's order; the mean sums the rows' terms in f64, in row order, as the CPU does.
#include "common.cuh"

// The hardest negative of a row: the first largest score among the marked columns; -1 if none.
__device__ __forceinline__ int hardest_negative(const float* row, const uint8_t* negatives, int m) {
    int at = -1;
    for (int j = 0; j < m; ++j) {
        if (negatives[j] && (at < 0 || row[j] > row[at])) at = j;
    }
    return at;
}

// `max(0, γ − s_pos + max(0, s_neg))` of one row; `*neg` receives the hardest negative.
__device__ __forceinline__ float matching_term(const float* row, int positive, const uint8_t* negatives, int m, float gamma, int* neg) {
    *neg = hardest_negative(row, negatives, m);
    float neg_part = *neg >= 0 ? fmaxf(row[*neg], 0.0f) : 0.0f;
    return fmaxf(gamma - row[positive] + neg_part, 0.0f);
}

// One block. `loss: [1]` = mean of the row terms, `terms: [n]` (scratch), `scores: [n × m]`,
// `positives: [n]`, `negatives: [n × m]` (0/1).
extern "C" __global__ void matching_loss_forward(float* loss, float* terms, const float* scores, const uint32_t* positives, const uint8_t* negatives,
                                                 int n, int m, float gamma) {
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        int neg;
        terms[i] = matching_term(scores + (size_t)i * m, positives[i], negatives + (size_t)i * m, m, gamma, &neg);
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        double total = 0.0;
        for (int i = 0; i < n; ++i) total += (double)terms[i];
        loss[0] = n > 0 ? (float)(total / n) : 0.0f;
    }
}

// `d_scores += d_loss · ∂L/∂scores`: for an active row, −1/n to its positive and, when the
// hardest negative's score is positive, +1/n to it. Grid-stride over rows.
extern "C" __global__ void matching_loss_backward(float* d_scores, const float* scores, const uint32_t* positives, const uint8_t* negatives, int n,
                                                  int m, float gamma, float d_loss) {
    float g = d_loss / (float)n;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
        const float* row = scores + (size_t)i * m;
        int neg;
        if (matching_term(row, positives[i], negatives + (size_t)i * m, m, gamma, &neg) > 0.0f) {
            d_scores[(size_t)i * m + positives[i]] -= g;
            if (neg >= 0 && row[neg] > 0.0f) d_scores[(size_t)i * m + neg] += g;
        }
    }
}

// The softmax normaliser over a row's candidates (its positive and its negatives) at
// temperature `t`: `*max` the largest `s/t`, returned `Σ e^{s/t − max}`.
__device__ __forceinline__ float candidate_norm(const float* row, int positive, const uint8_t* negatives, int m, float t, float* max) {
    float top = -INFINITY;
    for (int j = 0; j < m; ++j) {
        if (j == positive || negatives[j]) top = fmaxf(top, row[j] / t);
    }
    float sum = 0.0f;
    for (int j = 0; j < m; ++j) {
        if (j == positive || negatives[j]) sum += expf(row[j] / t - top);
    }
    *max = top;
    return sum;
}

// One block. `loss: [1]` = mean over rows of `max + log Σ − s(i, r_i)/t` (the row's
// candidate softmax cross-entropy); `terms: [n]` scratch; the rest as `matching_loss_forward`.
extern "C" __global__ void contrastive_loss_forward(float* loss, float* terms, const float* scores, const uint32_t* positives, const uint8_t* negatives,
                                                    int n, int m, float t) {
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        const float* row = scores + (size_t)i * m;
        float max;
        float sum = candidate_norm(row, positives[i], negatives + (size_t)i * m, m, t, &max);
        terms[i] = max + logf(sum) - row[positives[i]] / t;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        double total = 0.0;
        for (int i = 0; i < n; ++i) total += (double)terms[i];
        loss[0] = n > 0 ? (float)(total / n) : 0.0f;
    }
}

// `d_scores += d_loss · (softmax − onehot) / (n t)` over each row's candidates. Grid-stride
// over rows.
extern "C" __global__ void contrastive_loss_backward(float* d_scores, const float* scores, const uint32_t* positives, const uint8_t* negatives,
                                                     int n, int m, float t, float d_loss) {
    float g = d_loss / ((float)n * t);
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
        const float* row = scores + (size_t)i * m;
        const uint8_t* neg = negatives + (size_t)i * m;
        int p = positives[i];
        float max;
        float sum = candidate_norm(row, p, neg, m, t, &max);
        for (int j = 0; j < m; ++j) {
            if (j == p || neg[j]) d_scores[(size_t)i * m + j] += g * (expf(row[j] / t - max) / sum - (j == p ? 1.0f : 0.0f));
        }
    }
}

// One block. `loss: [1]` = mean over rows of `logsumexp(z_i) − z_i,y_i`; `terms: [n]`
// scratch, `logits: [n × classes]`, `labels: [n]`.
extern "C" __global__ void cross_entropy_forward(float* loss, float* terms, const float* logits, const uint32_t* labels, int n, int classes) {
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        const float* z = logits + (size_t)i * classes;
        float max = -INFINITY;
        for (int c = 0; c < classes; ++c) max = fmaxf(max, z[c]);
        float sum = 0.0f;
        for (int c = 0; c < classes; ++c) sum += expf(z[c] - max);
        terms[i] = max + logf(sum) - z[labels[i]];
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        double total = 0.0;
        for (int i = 0; i < n; ++i) total += (double)terms[i];
        loss[0] = n > 0 ? (float)(total / n) : 0.0f;
    }
}

// `d_logits += d_loss · (softmax(z_i) − onehot(y_i)) / n`. Grid-stride over rows.
extern "C" __global__ void cross_entropy_backward(float* d_logits, const float* logits, const uint32_t* labels, int n, int classes, float d_loss) {
    float scale = d_loss / (float)n;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
        const float* z = logits + (size_t)i * classes;
        float max = -INFINITY;
        for (int c = 0; c < classes; ++c) max = fmaxf(max, z[c]);
        float sum = 0.0f;
        for (int c = 0; c < classes; ++c) sum += expf(z[c] - max);
        for (int c = 0; c < classes; ++c) {
            float p = expf(z[c] - max) / sum;
            d_logits[(size_t)i * classes + c] += scale * (p - (c == (int)labels[i] ? 1.0f : 0.0f));
        }
    }
}
