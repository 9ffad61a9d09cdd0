/* inrkit: small MLPs over blocks of points on the CPU: the ARM's rate (forward and backward fused) and the
 * synthesis network of latent fields (forward; backward).
 *
 * An MLP here is n_hidden ReLU layers of `width` neurons and a linear output layer, its parameters packed
 * layer by layer as weight (out x in, row-major) then bias. A block of LANES points goes through it at
 * once, activations (features x LANES) in the L1 cache; the PyTorch references materialise (width, N)
 * activations for every layer and read them back in the backward pass, which is memory-bound.
 *
 * The ARM (the reference and specification is inrkit/fields/arm.py): for every latent y of an (h, w) grid,
 * its context (n_context latents of the rows above, zero outside the grid) goes through the MLP (2 outputs:
 * mu and a raw log2 scale clamped to [MIN_LOG2_SCALE, MAX_LOG2_SCALE]); its bits are -log2 P(y) under the
 * quantised Laplace, the log2 probability clamped below at min_log2_p (no gradient below it). With a gradient wanted, the gradient of
 * the loss "sum of bits" is accumulated in the same pass: into the grid (the latent's own value and,
 * through the first layer, its context's values) and into the parameters (per-lane float sums, added to
 * double sums after every row). A call works on a range of rows of one grid; a latent's context gradient
 * lands in the rows above it, so ranges run on several threads in two phases (inrkit/backends/cpu_mlp.py).
 *
 * The synthesis (reference: inrkit/fields/synthesis.py, channels_first): (K, N) features to (C, N) values;
 * its backward recomputes a block's activations, then takes the (C, N) upstream gradient to the features'
 * and the parameters' gradients. Calls work on ranges of points.
 *
 * No OpenMP (see grid_cpu.c). Compiled on first use by inrkit/backends/c_kernels.py.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#define LANES 16
#define MAX_FEATURES 256 /* inputs, width and outputs of an MLP at most */
#define MAX_HIDDEN 8
#define MIN_LOG2_SCALE (-6.0f)
#define MAX_LOG2_SCALE 8.0f
#define LN2 0.69314718055994530942f

typedef struct {
    int32_t n_in, width, n_hidden, n_out;
    const float *params; /* packed: weight then bias of each layer */
} Mlp;

/* Offset of layer l's weight in the packed parameters, its input and output sizes. */
static int64_t layer_offset(const Mlp *mlp, int layer, int *n_in, int *n_out) {
    int64_t offset = 0;
    int in = mlp->n_in;
    for (int l = 0; l < layer; ++l) {
        offset += (int64_t)mlp->width * in + mlp->width;
        in = mlp->width;
    }
    *n_in = in;
    *n_out = layer == mlp->n_hidden ? mlp->n_out : mlp->width;
    return offset;
}

static int64_t n_parameters(const Mlp *mlp) {
    int n_in, n_out;
    const int64_t offset = layer_offset(mlp, mlp->n_hidden, &n_in, &n_out);
    return offset + (int64_t)n_in * n_out + n_out;
}

static const float ZEROS[MAX_FEATURES];

/* out[n][b] = bias[n] + sum_k weight[n][k] in[k][b], ReLU when relu. Four outputs at a time share the loads
 * of in[k]; a last group of fewer than four reads zero weights for the missing rows and drops them. */
static void dense(const float *restrict weight, const float *restrict bias, int n_in, int n_out,
                  const float (*restrict in)[LANES], float (*restrict out)[LANES], int relu) {
    for (int n = 0; n < n_out; n += 4) {
        const float *w[4];
        float bias_of[4], a0[LANES], a1[LANES], a2[LANES], a3[LANES];
        for (int r = 0; r < 4; ++r) {
            w[r] = n + r < n_out ? weight + (int64_t)(n + r) * n_in : ZEROS;
            bias_of[r] = n + r < n_out ? bias[n + r] : 0.0f;
        }
        for (int b = 0; b < LANES; ++b) {
            a0[b] = bias_of[0];
            a1[b] = bias_of[1];
            a2[b] = bias_of[2];
            a3[b] = bias_of[3];
        }
        for (int k = 0; k < n_in; ++k) {
            const float c0 = w[0][k], c1 = w[1][k], c2 = w[2][k], c3 = w[3][k];
            for (int b = 0; b < LANES; ++b) {
                const float x = in[k][b];
                a0[b] += c0 * x;
                a1[b] += c1 * x;
                a2[b] += c2 * x;
                a3[b] += c3 * x;
            }
        }
        float *rows[4] = {a0, a1, a2, a3};
        for (int r = 0; r < 4 && n + r < n_out; ++r)
            for (int b = 0; b < LANES; ++b) out[n + r][b] = relu ? fmaxf(rows[r][b], 0.0f) : rows[r][b];
    }
}

/* Backward of one layer for a block: accumulate d(weight), d(bias) per lane; d(in) = weight^T d(out). */
static void dense_backward(const float *restrict weight, int n_in, int n_out, const float (*restrict in)[LANES],
                           const float (*restrict grad_out)[LANES], float (*restrict grad_in)[LANES],
                           float *restrict acc_weight, float *restrict acc_bias) {
    for (int n = 0; n < n_out; ++n) {
        float *restrict aw = acc_weight + (int64_t)n * n_in * LANES;
        for (int k = 0; k < n_in; ++k)
            for (int b = 0; b < LANES; ++b) aw[k * LANES + b] += grad_out[n][b] * in[k][b];
        for (int b = 0; b < LANES; ++b) acc_bias[n * LANES + b] += grad_out[n][b];
    }
    if (grad_in == NULL) return;
    for (int k = 0; k < n_in; k += 4) { /* grad_in = weight^T grad_out, four inputs at a time */
        float a0[LANES] = {0}, a1[LANES] = {0}, a2[LANES] = {0}, a3[LANES] = {0};
        for (int n = 0; n < n_out; ++n) {
            const float *row = weight + (int64_t)n * n_in + k;
            const float c0 = row[0], c1 = k + 1 < n_in ? row[1] : 0.0f, c2 = k + 2 < n_in ? row[2] : 0.0f,
                        c3 = k + 3 < n_in ? row[3] : 0.0f;
            for (int b = 0; b < LANES; ++b) {
                const float g = grad_out[n][b];
                a0[b] += c0 * g;
                a1[b] += c1 * g;
                a2[b] += c2 * g;
                a3[b] += c3 * g;
            }
        }
        float *rows[4] = {a0, a1, a2, a3};
        for (int r = 0; r < 4 && k + r < n_in; ++r)
            for (int b = 0; b < LANES; ++b) grad_in[k + r][b] = rows[r][b];
    }
}

/* Bits of y under the Laplace (mu, 2^s) and their derivatives in y, mu and the raw log2 scale. Both branches
 * of the probability are computed and one selected, so that the loop vectorises. With u = |y - mu|, b = 2^s:
 *   u >= 1/2:  log2 P = -1 - (u - 1/2)/(b ln 2) + log2(1 - e^(-1/b))
 *              d/du = -1/(b ln 2),  d/ds = (u - 1/2)/b - 1/(b (e^(1/b) - 1))
 *   u <  1/2:  P = 1 - (A + C)/2,  A = e^(-(1/2 - u)/b),  C = e^(-(1/2 + u)/b)
 *              d/du = -(A - C)/(2 b P ln 2),  d/ds = -(A (1/2 - u) + C (1/2 + u))/(2 b P) */
/* noinline: inlined, gcc does not vectorise the loop (vector exp/log need a loop of their own). */
__attribute__((noinline)) static void laplace_block(const float *y, const float *mu, const float *raw_scale,
                                                    const float *valid, float min_log2_p, float *bits, float *grad_y,
                                                    float *grad_mu, float *grad_scale) {
#pragma omp simd
    for (int b = 0; b < LANES; ++b) {
        const float inside = (float)((raw_scale[b] >= MIN_LOG2_SCALE) & (raw_scale[b] <= MAX_LOG2_SCALE));
        const float s = fminf(fmaxf(raw_scale[b], MIN_LOG2_SCALE), MAX_LOG2_SCALE);
        const float scale = exp2f(s), inverse = 1.0f / scale;
        const float diff = y[b] - mu[b];
        const float u = fabsf(diff);
        const float sign = (float)((diff > 0.0f) - (diff < 0.0f));
        const float gap = -expm1f(-inverse); /* 1 - e^(-1/b) */
        const float tail_log2_p = -1.0f - (u - 0.5f) * inverse / LN2 + log2f(gap);
        const float tail_d_u = -inverse / LN2;
        const float tail_d_s = (u - 0.5f) * inverse - inverse * (1.0f - gap) / gap; /* 1/(e^(1/b) - 1) = e^(-1/b)/gap */
        const float near = fminf(u, 0.5f);
        const float a = expf(-(0.5f - near) * inverse), c = expf(-(0.5f + near) * inverse);
        const float p = 1.0f - 0.5f * (a + c);
        const float centre_log2_p = log2f(p);
        const float centre_d_u = -(a - c) * 0.5f * inverse / (p * LN2);
        const float centre_d_s = -(a * (0.5f - near) + c * (0.5f + near)) * 0.5f * inverse / p;
        const int tail = u >= 0.5f;
        const float log2_p = tail ? tail_log2_p : centre_log2_p;
        const float d_u = tail ? tail_d_u : centre_d_u;
        const float d_s = tail ? tail_d_s : centre_d_s;
        const float live = (float)(log2_p >= min_log2_p) * valid[b];
        bits[b] = -fmaxf(log2_p, min_log2_p) * valid[b];
        grad_y[b] = -d_u * sign * live;
        grad_mu[b] = d_u * sign * live;
        grad_scale[b] = -d_s * inside * live;
    }
}

typedef float Block[MAX_FEATURES][LANES];

/* act[0] holds the block's inputs; fills act[1 .. n_hidden + 1] (the last: the outputs). */
static void forward_block(const Mlp *mlp, Block *act) {
    for (int l = 0; l <= mlp->n_hidden; ++l) {
        int n_in, n_out;
        const int64_t offset = layer_offset(mlp, l, &n_in, &n_out);
        dense(mlp->params + offset, mlp->params + offset + (int64_t)n_in * n_out, n_in, n_out,
              (const float (*)[LANES])act[l], act[l + 1], l < mlp->n_hidden);
    }
}

/* From the outputs' gradient (n_out x LANES), the parameters' gradients added to acc (LANES floats per
 * parameter) and the inputs' gradient, returned (one of the two scratch blocks). */
static const float (*backward_block(const Mlp *mlp, Block *act, const float (*grad_out)[LANES], Block *scratch,
                                    float *acc))[LANES] {
    const float (*upstream)[LANES] = grad_out;
    for (int l = mlp->n_hidden; l >= 0; --l) {
        int n_in, n_out;
        const int64_t offset = layer_offset(mlp, l, &n_in, &n_out);
        float (*down)[LANES] = scratch[l & 1];
        dense_backward(mlp->params + offset, n_in, n_out, (const float (*)[LANES])act[l], upstream, down,
                       acc + offset * LANES, acc + (offset + (int64_t)n_in * n_out) * LANES);
        if (l > 0) /* through the ReLU of layer l - 1 */
            for (int k = 0; k < n_in; ++k)
                for (int b = 0; b < LANES; ++b) down[k][b] = act[l][k][b] > 0.0f ? down[k][b] : 0.0f;
        upstream = (const float (*)[LANES])down;
    }
    return upstream;
}

/* grad_params += the lanes' sums of acc; acc <- 0. */
static void flush(float *acc, int64_t n_params, double *grad_params) {
    for (int64_t p = 0; p < n_params; ++p) {
        double sum = 0.0;
        for (int b = 0; b < LANES; ++b) sum += acc[p * LANES + b];
        grad_params[p] += sum;
    }
    memset(acc, 0, sizeof(float) * n_params * LANES);
}

/* Bits of rows [row_begin, row_end) of the (h, w) grid under the ARM (an MLP of n_context inputs and 2
 * outputs); with grad_grid (h*w) and grad_params (the packed parameters' size, double), adds the gradients
 * of their sum; workspace holds LANES floats per parameter. */
double inrkit_arm_rate(const float *grid, int64_t h, int64_t w, int64_t row_begin, int64_t row_end,
                       int32_t n_context, const int32_t *offsets, int32_t width, int32_t n_hidden,
                       const float *params, float min_log2_p, float *grad_grid, double *grad_params,
                       float *workspace) {
    const Mlp mlp = {n_context, width, n_hidden, 2, params};
    Block act[MAX_HIDDEN + 2], scratch[2];
    float valid[LANES], y[LANES], bits[LANES], grad_y[LANES], grad_out[2][LANES];
    const int64_t n_params = n_parameters(&mlp);
    if (grad_grid) memset(workspace, 0, sizeof(float) * n_params * LANES);
    double total = 0.0;
    (void)h;
    for (int64_t i = row_begin; i < row_end; ++i) {
        for (int64_t j0 = 0; j0 < w; j0 += LANES) {
            for (int b = 0; b < LANES; ++b) {
                valid[b] = j0 + b < w ? 1.0f : 0.0f;
                y[b] = j0 + b < w ? grid[i * w + j0 + b] : 0.0f;
            }
            for (int o = 0; o < n_context; ++o) {
                const int64_t r = i + offsets[2 * o];
                for (int b = 0; b < LANES; ++b) {
                    const int64_t c = j0 + b + offsets[2 * o + 1];
                    act[0][o][b] = (r >= 0 && c >= 0 && c < w && j0 + b < w) ? grid[r * w + c] : 0.0f;
                }
            }
            forward_block(&mlp, act);
            laplace_block(y, act[n_hidden + 1][0], act[n_hidden + 1][1], valid, min_log2_p, bits, grad_y,
                          grad_out[0], grad_out[1]);
            for (int b = 0; b < LANES; ++b) total += bits[b];
            if (!grad_grid) continue;
            for (int b = 0; b < LANES && j0 + b < w; ++b) grad_grid[i * w + j0 + b] += grad_y[b];
            const float (*grad_context)[LANES] = backward_block(&mlp, act, (const float (*)[LANES])grad_out, scratch,
                                                                workspace);
            for (int o = 0; o < n_context; ++o) {
                const int64_t r = i + offsets[2 * o];
                if (r < 0) continue;
                for (int b = 0; b < LANES && j0 + b < w; ++b) {
                    const int64_t c = j0 + b + offsets[2 * o + 1];
                    if (c >= 0 && c < w) grad_grid[r * w + c] += grad_context[o][b];
                }
            }
        }
        if (grad_grid) flush(workspace, n_params, grad_params);
    }
    return total;
}

/* Points [begin, end) of the (n_in, n) features through the MLP into the (n_out, n) output. */
void inrkit_mlp_forward(const float *features, int64_t n, int64_t begin, int64_t end, int32_t n_in, int32_t width,
                        int32_t n_hidden, int32_t n_out, const float *params, float *out) {
    const Mlp mlp = {n_in, width, n_hidden, n_out, params};
    Block act[MAX_HIDDEN + 2];
    for (int64_t j0 = begin; j0 < end; j0 += LANES) {
        const int lanes = end - j0 < LANES ? (int)(end - j0) : LANES;
        for (int k = 0; k < n_in; ++k)
            for (int b = 0; b < LANES; ++b) act[0][k][b] = b < lanes ? features[k * n + j0 + b] : 0.0f;
        forward_block(&mlp, act);
        for (int c = 0; c < n_out; ++c)
            for (int b = 0; b < lanes; ++b) out[c * n + j0 + b] = act[n_hidden + 1][c][b];
    }
}

/* Gradients of points [begin, end): from the (n_out, n) upstream gradient, adds the parameters' to grad_params
 * (double) and writes the features' into grad_features (n_in, n) unless NULL; workspace as for the ARM. */
void inrkit_mlp_backward(const float *features, int64_t n, int64_t begin, int64_t end, int32_t n_in, int32_t width,
                         int32_t n_hidden, int32_t n_out, const float *params, const float *grad_output,
                         float *grad_features, double *grad_params, float *workspace) {
    const Mlp mlp = {n_in, width, n_hidden, n_out, params};
    Block act[MAX_HIDDEN + 2], scratch[2];
    float grad_out[MAX_FEATURES][LANES];
    const int64_t n_params = n_parameters(&mlp);
    memset(workspace, 0, sizeof(float) * n_params * LANES);
    int64_t blocks = 0;
    for (int64_t j0 = begin; j0 < end; j0 += LANES) {
        const int lanes = end - j0 < LANES ? (int)(end - j0) : LANES;
        for (int k = 0; k < n_in; ++k)
            for (int b = 0; b < LANES; ++b) act[0][k][b] = b < lanes ? features[k * n + j0 + b] : 0.0f;
        for (int c = 0; c < n_out; ++c)
            for (int b = 0; b < LANES; ++b) grad_out[c][b] = b < lanes ? grad_output[c * n + j0 + b] : 0.0f;
        forward_block(&mlp, act);
        const float (*grad_in)[LANES] = backward_block(&mlp, act, (const float (*)[LANES])grad_out, scratch, workspace);
        if (grad_features)
            for (int k = 0; k < n_in; ++k)
                for (int b = 0; b < lanes; ++b) grad_features[k * n + j0 + b] = grad_in[k][b];
        if (++blocks % 64 == 0) flush(workspace, n_params, grad_params);
    }
    flush(workspace, n_params, grad_params);
}
