/* inrkit: 3x3 convolutions of few-channel images with replicate padding on the CPU, forward and backward.
 *
 * The reference is PyTorch's conv2d of the replicate-padded image (inrkit/fields/synthesis.py, Synthesis.refined):
 *   out[o][i][j] = bias[o] + sum_{c, dy, dx} weight[o][c][dy][dx] x[c][clamp(i + dy - 1)][clamp(j + dx - 1)]
 * for (C, H, W) planes, clamp to the image. oneDNN runs this 3-channel case far below the CPU's speed
 * (about 14 ms forward and backward per 768x512 image, one core); here rows are vectorised along the width.
 *
 * The backward gathers: the gradient of the padded input, (C, H + 2, W + 2), is
 *   gp[c][r][s] = sum_{o, dy, dx} weight[o][c][dy][dx] g[o][r - dy][s - dx]     (g zero outside the image)
 * row by row (rows are independent, so ranges of rows run on threads); the caller folds its border onto the
 * image's edge rows and columns (the replicate padding's adjoint). The weights' gradient is a dot product
 * per (o, c, dy, dx) and row, added in double.
 *
 * No OpenMP (see grid_cpu.c). Compiled on first use by inrkit/backends/c_kernels.py.
 */
#include <stdint.h>

static inline int64_t clamp_index(int64_t value, int64_t size) {
    return value < 0 ? 0 : (value >= size ? size - 1 : value);
}

/* Rows [row_begin, row_end) of the output. */
void inrkit_conv3_forward(const float *x, int64_t channels, int64_t h, int64_t w, const float *weight,
                          const float *bias, float *out, int64_t row_begin, int64_t row_end) {
    for (int64_t o = 0; o < channels; ++o) {
        for (int64_t i = row_begin; i < row_end; ++i) {
            float *restrict target = out + (o * h + i) * w;
            for (int64_t j = 0; j < w; ++j) target[j] = bias[o];
            for (int64_t c = 0; c < channels; ++c) {
                for (int dy = 0; dy < 3; ++dy) {
                    const float *restrict row = x + (c * h + clamp_index(i + dy - 1, h)) * w;
                    const float *k = weight + ((o * channels + c) * 3 + dy) * 3;
                    const float k0 = k[0], k1 = k[1], k2 = k[2];
                    for (int64_t j = 1; j + 1 < w; ++j) target[j] += k0 * row[j - 1] + k1 * row[j] + k2 * row[j + 1];
                    const int64_t edges[2] = {0, w - 1};
                    for (int e = 0; e < (w > 1 ? 2 : 1); ++e) {
                        const int64_t j = edges[e];
                        target[j] += k0 * row[clamp_index(j - 1, w)] + k1 * row[j] + k2 * row[clamp_index(j + 1, w)];
                    }
                }
            }
        }
    }
}

/* Rows [padded_begin, padded_end) of the padded input's gradient gp ((C, H + 2, W + 2)); the weights'
 * (C, C, 3, 3) and bias's gradients of output rows [row_begin, row_end) added to grad_weight and grad_bias. */
void inrkit_conv3_backward(const float *x, const float *grad_out, int64_t channels, int64_t h, int64_t w,
                           const float *weight, float *grad_padded, int64_t padded_begin, int64_t padded_end,
                           double *grad_weight, double *grad_bias, int64_t row_begin, int64_t row_end) {
    const int64_t pw = w + 2;
    for (int64_t c = 0; c < channels; ++c) {
        for (int64_t r = padded_begin; r < padded_end; ++r) {
            float *restrict target = grad_padded + (c * (h + 2) + r) * pw;
            for (int64_t s = 0; s < pw; ++s) target[s] = 0.0f;
            for (int64_t o = 0; o < channels; ++o) {
                for (int dy = 0; dy < 3; ++dy) {
                    const int64_t i = r - dy;
                    if (i < 0 || i >= h) continue;
                    const float *restrict g = grad_out + (o * h + i) * w;
                    const float *k = weight + ((o * channels + c) * 3 + dy) * 3;
                    const float k0 = k[0], k1 = k[1], k2 = k[2];
                    /* target[s] += k0 g[s] + k1 g[s - 1] + k2 g[s - 2], the terms whose g exist */
                    for (int64_t s = 2; s < w; ++s) target[s] += k0 * g[s] + k1 * g[s - 1] + k2 * g[s - 2];
                    for (int64_t s = 0; s < pw; ++s) {
                        if (s == 2 && w > 2) s = w; /* the interior is done */
                        target[s] += (s < w ? k0 * g[s] : 0.0f) + (s >= 1 && s <= w ? k1 * g[s - 1] : 0.0f)
                                     + (s >= 2 ? k2 * g[s - 2] : 0.0f);
                    }
                }
            }
        }
    }
    for (int64_t o = 0; o < channels; ++o) {
        for (int64_t i = row_begin; i < row_end; ++i) {
            const float *restrict g = grad_out + (o * h + i) * w;
            float bias_sum = 0.0f;
#pragma omp simd reduction(+ : bias_sum)
            for (int64_t j = 0; j < w; ++j) bias_sum += g[j];
            grad_bias[o] += bias_sum;
            for (int64_t c = 0; c < channels; ++c) {
                for (int dy = 0; dy < 3; ++dy) {
                    const float *restrict row = x + (c * h + clamp_index(i + dy - 1, h)) * w;
                    float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f;
#pragma omp simd reduction(+ : s0, s1, s2)
                    for (int64_t j = 1; j < w - 1; ++j) {
                        s0 += g[j] * row[j - 1];
                        s1 += g[j] * row[j];
                        s2 += g[j] * row[j + 1];
                    }
                    const int64_t edges[2] = {0, w - 1};
                    for (int e = 0; e < (w > 1 ? 2 : 1); ++e) {
                        const int64_t j = edges[e];
                        s0 += g[j] * row[clamp_index(j - 1, w)];
                        s1 += g[j] * row[j];
                        s2 += g[j] * row[clamp_index(j + 1, w)];
                    }
                    double *k = grad_weight + ((o * channels + c) * 3 + dy) * 3;
                    k[0] += s0;
                    k[1] += s1;
                    k[2] += s2;
                }
            }
        }
    }
}
