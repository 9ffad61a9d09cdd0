/* inrkit: the latent codec's fixed-point ARM over a range of latents in decoding order, on the CPU.
 *
 * The reference is FixedPointArm in inrkit/export/latent_codec.py (its docstring has the formula): for each latent
 * n of [begin, end), its context a_0[c] = buffer[positions[n] + dy_c * strides[n] + dx_c] (LatentOrder.context),
 * then per layer i
 *     v = (a_{i-1} . A_i) * m_i + beta_i        (A_i integer codes as float64, m_i = step_i * 2^-F_{i-1})
 *     a_i = min(rint(max(v, 0) * 2^F), limit)   (hidden layers only)
 * and from the output layer's v: mean = rint(v[0] * mean_steps) / mean_steps,
 * s = rint(clamp(v[1], min_log2, max_log2) * scale_steps), scale = ldexp(pow2_fraction[s mod 16], floor(s / 16)).
 *
 * Bit-identical to the reference: the dot products are sums of products of integers below 2^53, exact in any order
 * (with or without fused multiply-adds); every other operation is one correctly rounded IEEE operation in the
 * reference's order, and the file is compiled with -ffp-contract=off so that v * m + beta is never fused. rint
 * rounds half to even in the default rounding mode, as NumPy's rint does.
 *
 * A worker thread (inrkit_arm_worker_*) runs one call at a time in the background, so that a decoder can range-decode
 * one part of a row while the ARM predicts the next part: the caller must not write the buffer cells the running
 * call reads (its latents' contexts) nor read its outputs before inrkit_arm_worker_wait returns.
 *
 * No OpenMP (see grid_cpu.c). Compiled on first use by inrkit/backends/c_kernels.py.
 */
#define _GNU_SOURCE /* sched_yield */
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#define MAX_WIDTH 64 /* ARM_SCHEMA's largest n_context and n_neurons */
#define BLOCK 8      /* latents per pass: the products run across them, BLOCK wide */

/* Latents [begin, end) of the decoding order. `widths` has n_layers + 1 entries (context, hidden..., 2); `codes`
 * holds each layer's (in, out) matrix row-major, one after another; `biases` each layer's out values. */
void inrkit_arm_exact(const double *buffer, const int64_t *positions, const int64_t *strides, const int64_t *deltas,
                      int64_t begin, int64_t end, int64_t n_layers, const int64_t *widths, const double *codes,
                      const double *multipliers, const double *biases, double fraction_scale, double limit,
                      double mean_steps, double scale_steps, double min_log2, double max_log2,
                      const double *pow2_fraction, double *mean, double *scale) {
    double a[MAX_WIDTH][BLOCK], v[MAX_WIDTH][BLOCK];
    const int64_t n_context = widths[0];
    const int64_t steps = (int64_t)scale_steps;
    for (int64_t first = begin; first < end; first += BLOCK) {
        const int64_t count = end - first < BLOCK ? end - first : BLOCK;
        for (int64_t c = 0; c < n_context; ++c)
            for (int64_t b = 0; b < BLOCK; ++b) {
                const int64_t n = first + (b < count ? b : 0); /* a short last block repeats its first latent */
                a[c][b] = buffer[positions[n] + deltas[2 * c] * strides[n] + deltas[2 * c + 1]];
            }
        const double *layer_codes = codes, *layer_biases = biases;
        for (int64_t layer = 0; layer < n_layers; ++layer) {
            const int64_t in = widths[layer], out = widths[layer + 1];
            const double multiplier = multipliers[layer];
            for (int64_t j = 0; j < out; ++j)
                for (int64_t b = 0; b < BLOCK; ++b) v[j][b] = 0.0;
            for (int64_t i = 0; i < in; ++i) /* the out sums are independent chains */
                for (int64_t j = 0; j < out; ++j) {
                    const double w = layer_codes[i * out + j];
#pragma omp simd
                    for (int64_t b = 0; b < BLOCK; ++b) v[j][b] += a[i][b] * w;
                }
            for (int64_t j = 0; j < out; ++j)
#pragma omp simd
                for (int64_t b = 0; b < BLOCK; ++b) {
                    const double scaled = v[j][b] * multiplier;
                    v[j][b] = scaled + layer_biases[j];
                }
            layer_codes += in * out;
            layer_biases += out;
            if (layer == n_layers - 1) break;
            for (int64_t j = 0; j < out; ++j)
#pragma omp simd
                for (int64_t b = 0; b < BLOCK; ++b) {
                    const double relu = v[j][b] > 0.0 ? v[j][b] : 0.0;
                    const double fixed = nearbyint(relu * fraction_scale);
                    a[j][b] = fixed < limit ? fixed : limit;
                }
        }
        for (int64_t b = 0; b < count; ++b) {
            mean[first - begin + b] = nearbyint(v[0][b] * mean_steps) / mean_steps;
            const double log2_scale = fmin(fmax(v[1][b], min_log2), max_log2);
            const int64_t s = (int64_t)nearbyint(log2_scale * scale_steps);
            const int64_t whole = s >= 0 ? s / steps : -((-s + steps - 1) / steps); /* floor division */
            scale[first - begin + b] = ldexp(pow2_fraction[s - whole * steps], (int)whole);
        }
    }
}

/* The arguments of one inrkit_arm_exact call. */
typedef struct {
    const double *buffer;
    const int64_t *positions, *strides, *deltas;
    int64_t begin, end, n_layers;
    const int64_t *widths;
    const double *codes, *multipliers, *biases;
    double fraction_scale, limit, mean_steps, scale_steps, min_log2, max_log2;
    const double *pow2_fraction;
    double *mean, *scale;
} ArmCall;

/* The worker's state: IDLE (waiting for a call), PENDING (a call submitted, not finished), QUIT. Both sides spin
 * on it (yielding the core now and then) instead of sleeping on a condition variable: a call takes tens of
 * microseconds, and waking a sleeping thread costs about as much on a virtual machine. */
enum { IDLE, PENDING, QUIT };

typedef struct {
    pthread_t thread;
    ArmCall call;
    atomic_int state;
} ArmWorker;

/* One round of a wait loop: every 256th round gives the core away. */
static void relax(unsigned *rounds) {
    if (++*rounds % 256 == 0) sched_yield();
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static void run_call(const ArmCall *c) {
    inrkit_arm_exact(c->buffer, c->positions, c->strides, c->deltas, c->begin, c->end, c->n_layers, c->widths, c->codes,
                     c->multipliers, c->biases, c->fraction_scale, c->limit, c->mean_steps, c->scale_steps, c->min_log2,
                     c->max_log2, c->pow2_fraction, c->mean, c->scale);
}

static void *serve(void *argument) {
    ArmWorker *worker = argument;
    for (;;) {
        unsigned rounds = 0;
        int state;
        while ((state = atomic_load_explicit(&worker->state, memory_order_acquire)) == IDLE) relax(&rounds);
        if (state == QUIT) return NULL;
        run_call(&worker->call);
        atomic_store_explicit(&worker->state, IDLE, memory_order_release);
    }
}

/* A started worker, or NULL when no thread could be made (the caller then calls inrkit_arm_exact itself). */
void *inrkit_arm_worker_start(void) {
    ArmWorker *worker = calloc(1, sizeof(ArmWorker));
    if (!worker) return NULL;
    atomic_init(&worker->state, IDLE);
    if (pthread_create(&worker->thread, NULL, serve, worker) != 0) {
        free(worker);
        return NULL;
    }
    return worker;
}

/* Waits for the running call, if any, to finish. */
void inrkit_arm_worker_wait(void *handle) {
    ArmWorker *worker = handle;
    unsigned rounds = 0;
    while (atomic_load_explicit(&worker->state, memory_order_acquire) == PENDING) relax(&rounds);
}

/* Starts inrkit_arm_exact with these arguments on the worker (after the running call, if any) and returns. */
void inrkit_arm_worker_submit(void *handle, const double *buffer, const int64_t *positions, const int64_t *strides,
                              const int64_t *deltas, int64_t begin, int64_t end, int64_t n_layers, const int64_t *widths,
                              const double *codes, const double *multipliers, const double *biases,
                              double fraction_scale, double limit, double mean_steps, double scale_steps,
                              double min_log2, double max_log2, const double *pow2_fraction, double *mean,
                              double *scale) {
    ArmWorker *worker = handle;
    inrkit_arm_worker_wait(worker);
    worker->call = (ArmCall){buffer, positions, strides, deltas, begin, end, n_layers, widths, codes, multipliers,
                             biases, fraction_scale, limit, mean_steps, scale_steps, min_log2, max_log2, pow2_fraction,
                             mean, scale};
    atomic_store_explicit(&worker->state, PENDING, memory_order_release);
}

/* Ends the worker's thread (after its running call) and frees it. */
void inrkit_arm_worker_stop(void *handle) {
    ArmWorker *worker = handle;
    inrkit_arm_worker_wait(worker);
    atomic_store_explicit(&worker->state, QUIT, memory_order_release);
    pthread_join(worker->thread, NULL);
    free(worker);
}
