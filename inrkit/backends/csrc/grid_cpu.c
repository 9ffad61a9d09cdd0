/* inrkit: CPU kernels for tiny-cuda-nn-compatible grid encodings and tcnn's Adam step.
 *
 * The maths is the PyTorch reference in inrkit/encodings/grid.py (the specification):
 *   p = (float)((double)x * s_l + 0.5), c = floor(p), f = p - c  (f <- f^2 (3 - 2f) for Smoothstep)
 *   corner k: vertex c_d + bit_d(k), weight prod_d (bit ? f_d : 1 - f_d)
 *   index: dense sum c_d R^d or XOR-hash c_d * prime_d in uint32 arithmetic, modulo the level size.
 * Each function works on a range so that the caller can run ranges on several threads: forward and
 * Adam split points/entries, backward splits levels (levels own disjoint table ranges, so the scatter
 * needs no atomics). No OpenMP: a second OpenMP runtime next to PyTorch's makes both spin and stall.
 * Compiled on first use by inrkit/backends/cpu_grid.py.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

static const uint32_t PRIMES[7] = {1u, 2654435761u, 805459861u, 3674653429u, 2097192037u, 1434869437u, 2165219737u};

enum { LINEAR = 0, SMOOTHSTEP = 1, NEAREST = 2 };

typedef struct {
    int32_t dims, n_levels, features, interpolation, n_active;
    const float *scales;
    const int64_t *resolutions, *sizes, *offsets;
    const uint8_t *hashed;
} Grid;

/* Cell and upper-vertex weights of point x at level l; returns the number of corners. */
static inline int locate(const Grid *g, int level, const float *x, uint32_t *cell, float *upper) {
    for (int d = 0; d < g->dims; ++d) {
        float p = (float)((double)x[d] * (double)g->scales[level] + 0.5);
        float c = floorf(p);
        float f = p - c;
        cell[d] = (uint32_t)(int64_t)c;
        upper[d] = g->interpolation == SMOOTHSTEP ? f * f * (3.0f - 2.0f * f) : f;
    }
    return g->interpolation == NEAREST ? 1 : (1 << g->dims);
}

static inline uint32_t corner_index(const Grid *g, int level, const uint32_t *cell, int corner, const float *upper,
                                    float *weight) {
    uint32_t index = 0, stride = 1;
    float w = 1.0f;
    for (int d = 0; d < g->dims; ++d) {
        uint32_t bit = g->interpolation == NEAREST ? 0u : (uint32_t)((corner >> d) & 1);
        uint32_t v = cell[d] + bit;
        if (g->interpolation != NEAREST) w *= bit ? upper[d] : 1.0f - upper[d];
        if (g->hashed[level]) {
            index ^= v * PRIMES[d];
        } else {
            index += v * stride;
            stride *= (uint32_t)g->resolutions[level];
        }
    }
    *weight = w;
    const uint64_t size = (uint64_t)g->sizes[level];
    return (size & (size - 1)) == 0 ? (uint32_t)(index & (size - 1)) : (uint32_t)(index % size);
}

static Grid make_grid(int32_t dims, int32_t n_levels, int32_t features, int32_t interpolation, int32_t n_active,
                      const float *scales, const int64_t *resolutions, const int64_t *sizes, const int64_t *offsets,
                      const uint8_t *hashed) {
    Grid g = {dims, n_levels, features, interpolation, n_active, scales, resolutions, sizes, offsets, hashed};
    return g;
}

#define BLOCK 32 /* points whose corner indices are computed (and their entries prefetched) before use */

/* Corner indices and weights of points [i0, i0 + count) at one level; prefetches their entries. */
static inline int block_lookup(const Grid *g, int level, const float *x, int64_t i0, int count, const float *table,
                               uint32_t *index, float *weight) {
    int corners = 1;
    for (int b = 0; b < count; ++b) {
        uint32_t cell[4];
        float upper[4];
        corners = locate(g, level, x + (i0 + b) * g->dims, cell, upper);
        for (int k = 0; k < corners; ++k) {
            uint32_t j = corner_index(g, level, cell, k, upper, &weight[b * corners + k]);
            index[b * corners + k] = j;
            __builtin_prefetch(table + (int64_t)j * g->features);
        }
    }
    return corners;
}

/* Rows [begin, end) of out (n, n_levels * features), row-major; inactive levels are zero. */
void inrkit_grid_forward(const float *x, int64_t begin, int64_t end, const float *params, float *out, int32_t dims,
                         int32_t n_levels, int32_t features, int32_t interpolation, int32_t n_active, const float *scales,
                         const int64_t *resolutions, const int64_t *sizes, const int64_t *offsets, const uint8_t *hashed) {
    Grid g = make_grid(dims, n_levels, features, interpolation, n_active, scales, resolutions, sizes, offsets, hashed);
    const int64_t width = (int64_t)n_levels * features;
    uint32_t index[BLOCK * 16];
    float weight[BLOCK * 16];
    for (int level = 0; level < n_levels; ++level) {
        const float *table = params + offsets[level] * features;
        for (int64_t i0 = begin; i0 < end; i0 += BLOCK) {
            const int count = (int)(end - i0 < BLOCK ? end - i0 : BLOCK);
            if (level >= g.n_active) {
                for (int b = 0; b < count; ++b)
                    for (int f = 0; f < features; ++f) out[(i0 + b) * width + (int64_t)level * features + f] = 0.0f;
                continue;
            }
            const int corners = block_lookup(&g, level, x, i0, count, table, index, weight);
            for (int b = 0; b < count; ++b) {
                float *y = out + (i0 + b) * width + (int64_t)level * features;
                for (int f = 0; f < features; ++f) y[f] = 0.0f;
                for (int k = 0; k < corners; ++k) {
                    const float w = weight[b * corners + k];
                    const float *entry = table + (int64_t)index[b * corners + k] * features;
                    for (int f = 0; f < features; ++f) y[f] += w * entry[f];
                }
            }
        }
    }
}

/* For levels [level_begin, level_end): grad_params += sum over the n points of weight * grad_out. */
void inrkit_grid_backward(const float *x, int64_t n, int32_t level_begin, int32_t level_end, const float *grad_out,
                          float *grad_params, int32_t dims, int32_t n_levels, int32_t features, int32_t interpolation,
                          int32_t n_active, const float *scales, const int64_t *resolutions, const int64_t *sizes,
                          const int64_t *offsets, const uint8_t *hashed) {
    Grid g = make_grid(dims, n_levels, features, interpolation, n_active, scales, resolutions, sizes, offsets, hashed);
    const int64_t width = (int64_t)n_levels * features;
    uint32_t index[BLOCK * 16];
    float weight[BLOCK * 16];
    if (level_end > g.n_active) level_end = g.n_active;
    for (int level = level_begin; level < level_end; ++level) {
        float *table = grad_params + offsets[level] * features;
        for (int64_t i0 = 0; i0 < n; i0 += BLOCK) {
            const int count = (int)(n - i0 < BLOCK ? n - i0 : BLOCK);
            const int corners = block_lookup(&g, level, x, i0, count, table, index, weight);
            for (int b = 0; b < count; ++b) {
                const float *dy = grad_out + (i0 + b) * width + (int64_t)level * features;
                for (int k = 0; k < corners; ++k) {
                    const float w = weight[b * corners + k];
                    float *entry = table + (int64_t)index[b * corners + k] * features;
                    for (int f = 0; f < features; ++f) entry[f] += w * dy[f];
                }
            }
        }
    }
}

/* tcnn's Adam on non-matrix parameters: entries whose gradient is exactly zero are skipped and
 * every entry counts its own steps for the bias correction. */
void inrkit_sparse_adam(float *w, const float *grad, float *m, float *v, int32_t *steps, int64_t begin, int64_t end,
                        float lr, float beta1, float beta2, float eps) {
    for (int64_t i = begin; i < end; ++i) {
        float g = grad[i];
        if (g == 0.0f) continue;
        int32_t t = ++steps[i];
        float mi = beta1 * m[i] + (1.0f - beta1) * g;
        float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
        m[i] = mi;
        v[i] = vi;
        float step_size = lr * sqrtf(1.0f - powf(beta2, (float)t)) / (1.0f - powf(beta1, (float)t));
        w[i] -= step_size * mi / (sqrtf(vi) + eps);
    }
}
