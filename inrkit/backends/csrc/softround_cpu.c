/* inrkit: the noisy soft rounding of latents (C3, Cool-Chic) and its derivative in one pass, on the CPU.
 *
 * The reference is quantise_latent(..., mode="noise") in inrkit/encodings/latent_grids.py:
 *   v <- clamp(v, -L, L);  y = s_T(s_T(v) + sigma e),   s_T(x) = floor(x) + tanh(r/T)/(2 tanh(1/(2T))) + 1/2,
 *   r = x - floor(x) - 1/2,   s_T'(x) = (1 - tanh(r/T)^2)/(2 T tanh(1/(2T)))
 * and dy/dv = s_T'(s_T(v) + sigma e) s_T'(v) inside [-L, L], zero outside (the clamp's gradient). PyTorch runs
 * these as a dozen passes over the 524k latents of a 768x512 image and as many in the backward pass.
 *
 * No OpenMP (see grid_cpu.c). Compiled on first use by inrkit/backends/c_kernels.py.
 */
#include <math.h>
#include <stdint.h>

/* Values [begin, end): y and dy/dv. */
void inrkit_soft_round_noise(const float *values, const float *noise, int64_t begin, int64_t end, float limit,
                             float temperature, float sigma, float *out, float *derivative) {
    const float half_over = 0.5f / tanhf(0.5f / temperature), inverse_t = 1.0f / temperature;
#pragma omp simd
    for (int64_t n = begin; n < end; ++n) {
        const float v = fminf(fmaxf(values[n], -limit), limit);
        const float inside = (float)((values[n] >= -limit) & (values[n] <= limit));
        const float floor_v = floorf(v);
        const float t1 = tanhf((v - floor_v - 0.5f) * inverse_t);
        const float x = floor_v + half_over * t1 + 0.5f + sigma * noise[n];
        const float floor_x = floorf(x);
        const float t2 = tanhf((x - floor_x - 0.5f) * inverse_t);
        out[n] = floor_x + half_over * t2 + 0.5f;
        derivative[n] = inside * (half_over * inverse_t) * (1.0f - t1 * t1) * (half_over * inverse_t) * (1.0f - t2 * t2);
    }
}
