// Loops written so clang vectorises them (no branches, no calls but inline helpers), built
// for AVX-512, AVX2 and the baseline; the loader picks the best the CPU has (ifunc), so no
// AVX-512 instruction ever runs on a CPU without it. Each kernel is a static `*_clones`
// function behind a plain exported one: Swift's optimiser may take a kernel's address (when it
// merges closures that differ only in the kernel they call), and the linker left the GOT slot
// of a locally defined ifunc empty — a jump to address 0. A plain function's address is safe.
#include "lvd_kernels.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && defined(__clang__)
#define LVDK_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define LVDK_CLONES
#endif

static inline float bits_to_float(uint32_t b) { float f; memcpy(&f, &b, 4); return f; }
static inline uint32_t float_to_bits(float f) { uint32_t b; memcpy(&b, &f, 4); return b; }

// e^x: x·log2e = n + f by the magic-number trick, e^(f·ln2) by the Cephes expf polynomial,
// 2^n from exponent bits. Relative error ≤ 1e-6; saturates below −87.3 (≈ 1e−38) and above 88.
static inline float fast_exp(float x) {
    float v = x * 1.44269504088896341f;
    v = v < -126.0f ? -126.0f : (v > 127.0f ? 127.0f : v);
    const float magic = 12582912.0f;
    float shifted = v + magic;
    float n = shifted - magic;
    float r = (v - n) * 0.693147180559945f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    uint32_t e = float_to_bits(shifted) - float_to_bits(magic);
    return p * bits_to_float((e + 127u) << 23);
}

// erf(x), Abramowitz & Stegun 7.1.26 (|error| ≤ 1.5e-7).
static inline float fast_erf(float x) {
    float a = fabsf(x);
    float t = 1.0f / (1.0f + 0.3275911f * a);
    float y = 1.0f - (((((1.061405429f * t - 1.453152027f) * t) + 1.421413741f) * t - 0.284496736f) * t + 0.254829592f) * t
                         * fast_exp(-a * a);
    return copysignf(y, x);
}

LVDK_CLONES static void lvdk_exp_clones(const float *x, float *y, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] = fast_exp(x[i]);
}
void lvdk_exp(const float *x, float *y, size_t n) { lvdk_exp_clones(x, y, n); }

LVDK_CLONES static void lvdk_silu_clones(const float *x, float *y, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] = x[i] / (1.0f + fast_exp(-x[i]));
}
void lvdk_silu(const float *x, float *y, size_t n) { lvdk_silu_clones(x, y, n); }

LVDK_CLONES static void lvdk_gelu_clones(const float *x, float *y, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] = 0.5f * x[i] * (1.0f + fast_erf(x[i] * 0.70710678118654752f));
}
void lvdk_gelu(const float *x, float *y, size_t n) { lvdk_gelu_clones(x, y, n); }

LVDK_CLONES static void lvdk_silu_grad_clones(const float *g, const float *x, float *y, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float s = 1.0f / (1.0f + fast_exp(-x[i]));
        y[i] = g[i] * s * (1.0f + x[i] * (1.0f - s));
    }
}
void lvdk_silu_grad(const float *g, const float *x, float *y, size_t n) { lvdk_silu_grad_clones(g, x, y, n); }

LVDK_CLONES static void lvdk_gelu_grad_clones(const float *g, const float *x, float *y, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float cdf = 0.5f * (1.0f + fast_erf(x[i] * 0.70710678118654752f));
        float pdf = fast_exp(-0.5f * x[i] * x[i]) * 0.39894228040143268f;
        y[i] = g[i] * (cdf + x[i] * pdf);
    }
}
void lvdk_gelu_grad(const float *g, const float *x, float *y, size_t n) { lvdk_gelu_grad_clones(g, x, y, n); }

// Σ of a term over n values with 64 independent accumulators (four AVX-512 registers, eight AVX2
// ones), so clang vectorises without needing to reassociate and the adds do not wait on each
// other: one accumulator register made a reduction latency-bound (group norm's statistics at 2.7
// floats a cycle). Arrays under 256 and the tail go eight at a time. The term is x, x·y or
// (x − shift)²; `kind` is a constant at every call, so each inlined copy keeps only its own.
enum { TERM_X, TERM_XY, TERM_SQUARED_DEVIATION };
static inline __attribute__((always_inline)) float term(int kind, const float *x, const float *y, float shift, size_t i) {
    if (kind == TERM_XY) return x[i] * y[i];
    if (kind == TERM_SQUARED_DEVIATION) { float d = x[i] - shift; return d * d; }
    return x[i];
}

static inline __attribute__((always_inline)) float lanes_total(int kind, const float *x, const float *y, float shift, size_t n) {
    float lanes[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    size_t i = 0;
    if (n >= 256) {   // short rows (attention's 16 or 77 keys) would pay more to set up and fold
        float wide[64] = {0};
        for (; i + 64 <= n; i += 64)
            for (int k = 0; k < 64; k++) wide[k] += term(kind, x, y, shift, i + k);
        for (int k = 0; k < 64; k++) lanes[k % 8] += wide[k];
    }
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) lanes[k] += term(kind, x, y, shift, i + k);
    float total = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
    for (; i < n; i++) total += term(kind, x, y, shift, i);
    return total;
}

static inline __attribute__((always_inline)) float sum_lanes(const float *x, size_t n) { return lanes_total(TERM_X, x, 0, 0, n); }
static inline __attribute__((always_inline)) float dot_lanes(const float *x, const float *y, size_t n) {
    return lanes_total(TERM_XY, x, y, 0, n);
}

// Σx and Σx·y in the one pass (normalisation backward: one read of each row, not two of x).
// The same accumulators, in the same order, as sum_lanes and dot_lanes: the same results.
static inline __attribute__((always_inline)) void sum_dot_lanes(const float *x, const float *y, size_t n, float *sum_out,
                                                                 float *dot_out) {
    float sums[8] = {0, 0, 0, 0, 0, 0, 0, 0}, dots[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    size_t i = 0;
    if (n >= 256) {
        float wide_sums[64] = {0}, wide_dots[64] = {0};
        for (; i + 64 <= n; i += 64)
            for (int k = 0; k < 64; k++) {
                wide_sums[k] += x[i + k];
                wide_dots[k] += x[i + k] * y[i + k];
            }
        for (int k = 0; k < 64; k++) {
            sums[k % 8] += wide_sums[k];
            dots[k % 8] += wide_dots[k];
        }
    }
    // The short rest in two loops, as sum_lanes and dot_lanes run it (one loop for both is
    // contracted differently and would change results in the last bit).
    size_t rest = i;
    for (i = rest; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) sums[k] += x[i + k];
    float sum = ((sums[0] + sums[1]) + (sums[2] + sums[3])) + ((sums[4] + sums[5]) + (sums[6] + sums[7]));
    for (; i < n; i++) sum += x[i];
    for (i = rest; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) dots[k] += x[i + k] * y[i + k];
    float dot = ((dots[0] + dots[1]) + (dots[2] + dots[3])) + ((dots[4] + dots[5]) + (dots[6] + dots[7]));
    for (; i < n; i++) dot += x[i] * y[i];
    *sum_out = sum;
    *dot_out = dot;
}

LVDK_CLONES static float lvdk_sum_clones(const float *x, size_t n) { return sum_lanes(x, n); }
float lvdk_sum(const float *x, size_t n) { return lvdk_sum_clones(x, n); }

LVDK_CLONES static float lvdk_max_clones(const float *x, size_t n) {
    float lanes[8] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY};
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) lanes[k] = x[i + k] > lanes[k] ? x[i + k] : lanes[k];
    float best = lanes[0];
    for (int k = 1; k < 8; k++) best = lanes[k] > best ? lanes[k] : best;
    for (; i < n; i++) best = x[i] > best ? x[i] : best;
    return best;
}
float lvdk_max(const float *x, size_t n) { return lvdk_max_clones(x, n); }

// Mean and 1/√(biased variance + eps) of n values, in two passes: the mean, then squared
// deviations (stable for large means).
static inline __attribute__((always_inline)) void row_stats(const float *in, size_t n, float eps, float *mean_out, float *rstd_out) {
    float mean = sum_lanes(in, n) / (float)(n ? n : 1);
    float squares = lanes_total(TERM_SQUARED_DEVIATION, in, 0, mean, n);
    *mean_out = mean;
    *rstd_out = 1.0f / sqrtf(squares / (float)(n ? n : 1) + eps);
}

LVDK_CLONES static void lvdk_normalize_rows_clones(const float *x, float *y, size_t rows, size_t n, float eps, float *mean_out,
                                                   float *rstd_out) {
    for (size_t r = 0; r < rows; r++) {
        const float *in = x + r * n;
        float *out = y + r * n;
        float mean, rstd;
        row_stats(in, n, eps, &mean, &rstd);
        for (size_t j = 0; j < n; j++) out[j] = (in[j] - mean) * rstd;
        mean_out[r] = mean;
        rstd_out[r] = rstd;
    }
}
void lvdk_normalize_rows(const float *x, float *y, size_t rows, size_t n, float eps, float *mean_out, float *rstd_out) { lvdk_normalize_rows_clones(x, y, rows, n, eps, mean_out, rstd_out); }

// Inference group norm: rows first … first+rows−1 of (sample, group), each `channels` channels of
// `plane` values; the per-channel affine (weight, bias: null for none) and, when `silu`, SiLU are
// folded into the one pass that writes y — no normalised intermediate, no separate passes.
LVDK_CLONES static void lvdk_group_norm_rows_clones(const float *x, float *y, size_t first, size_t rows, size_t groups,
                                                    size_t channels, size_t plane, float eps, const float *weight,
                                                    const float *bias, int silu) {
    size_t n = channels * plane;
    for (size_t r = first; r < first + rows; r++) {
        const float *in = x + r * n;
        float *out = y + r * n;
        float mean, rstd;
        row_stats(in, n, eps, &mean, &rstd);
        for (size_t ch = 0; ch < channels; ch++) {
            size_t channel = (r % groups) * channels + ch;
            float a = rstd * (weight ? weight[channel] : 1.0f);
            float b = (bias ? bias[channel] : 0.0f) - mean * a;
            const float *src = in + ch * plane;
            float *dst = out + ch * plane;
            if (silu) {
                for (size_t j = 0; j < plane; j++) {
                    float v = src[j] * a + b;
                    dst[j] = v / (1.0f + fast_exp(-v));
                }
            } else {
                for (size_t j = 0; j < plane; j++) dst[j] = src[j] * a + b;
            }
        }
    }
}
void lvdk_group_norm_rows(const float *x, float *y, size_t first, size_t rows, size_t groups, size_t channels, size_t plane, float eps, const float *weight, const float *bias, int silu) { lvdk_group_norm_rows_clones(x, y, first, rows, groups, channels, plane, eps, weight, bias, silu); }

// One row's softmax in one pass, without the shift by the row's maximum: e^x with the row's
// maximum and sum on 16 lanes, then the scaling. The shift only keeps e^x from overflowing, so
// this holds where the largest value is moderate; it reads and writes whole 16-wide blocks (the
// tail's lanes masked: 0 out), so up to n rounded up to 16 must be readable and writable. Returns
// 0, having written garbage, when the maximum is outside [−30, 60] (or every value is NaN): the
// caller then takes the shifted path from the input, which this must not have overwritten. On
// attention's rows (77 keys in rows of 80, or 16, or 1024) this is 1.3–1.7× faster than the
// shifted passes, whose horizontal maximum must finish before any e^x can start.
static inline __attribute__((always_inline)) int softmax_row_unshifted(const float *in, float *out, size_t n) {
    size_t blocks = (n + 15) / 16;
    float hi[16], sum[16];
    for (int k = 0; k < 16; k++) { hi[k] = -INFINITY; sum[k] = 0; }
    for (size_t b = 0; b < blocks; b++)
        for (int k = 0; k < 16; k++) {
            size_t j = b * 16 + k;
            float x = in[j];
            x = j < n ? x : -INFINITY;
            hi[k] = x > hi[k] ? x : hi[k];
            float e = fast_exp(x);
            e = j < n ? e : 0.0f;
            out[j] = e;
            sum[k] += e;
        }
    float top = hi[0], total = 0;
    for (int k = 1; k < 16; k++) top = hi[k] > top ? hi[k] : top;
    if (!(top >= -30.0f && top <= 60.0f)) return 0;
    for (int k = 0; k < 16; k++) total += sum[k];
    float scale = 1.0f / total;
    for (size_t j = 0; j < blocks * 16; j++) out[j] *= scale;
    return 1;
}

LVDK_CLONES static void lvdk_softmax_rows_clones(const float *x, float *y, size_t rows, size_t n, size_t ld, int log) {
    // The one-pass path needs the input kept (for its fallback) and whole 16-wide blocks.
    int one_pass = !log && x != y && (n % 16 == 0 || ld >= (n + 15) / 16 * 16);
    for (size_t r = 0; r < rows; r++) {
        const float *in = x + r * ld;
        float *out = y + r * ld;
        if (one_pass && softmax_row_unshifted(in, out, n)) continue;
        float peak = lvdk_max(in, n);
        if (peak == -INFINITY) peak = 0;
        // Separate loops: each vectorises (a sum inside the exp loop would not). In place (the
        // fused attention's scores) the two-pointer loop would fail clang's overlap check and
        // run scalar, so that case reads and writes through one pointer.
        if (in == out) {
            for (size_t j = 0; j < n; j++) out[j] = fast_exp(out[j] - peak);
        } else {
            for (size_t j = 0; j < n; j++) out[j] = fast_exp(in[j] - peak);
        }
        float total = lvdk_sum(out, n);
        if (log) {
            float shift = peak + logf(total);
            for (size_t j = 0; j < n; j++) out[j] = in[j] - shift;
        } else {
            float scale = 1.0f / total;
            for (size_t j = 0; j < n; j++) out[j] *= scale;
        }
    }
}
void lvdk_softmax_rows(const float *x, float *y, size_t rows, size_t n, size_t ld, int log) { lvdk_softmax_rows_clones(x, y, rows, n, ld, log); }

// Softmax backward per row: dx = y · (g − Σ g·y).
LVDK_CLONES static void lvdk_softmax_grad_rows_clones(const float *g, const float *y, float *dx, size_t rows, size_t n) {
    for (size_t r = 0; r < rows; r++) {
        const float *gr = g + r * n, *yr = y + r * n;
        float *out = dx + r * n;
        float dot = dot_lanes(gr, yr, n);   // without writing, then the one pass that writes dx
        for (size_t j = 0; j < n; j++) out[j] = yr[j] * (gr[j] - dot);
    }
}
void lvdk_softmax_grad_rows(const float *g, const float *y, float *dx, size_t rows, size_t n) { lvdk_softmax_grad_rows_clones(g, y, dx, rows, n); }

// Row-normalisation backward: dx = rstd · (g − mean(g) − ŷ · mean(g · ŷ)).
LVDK_CLONES static void lvdk_normalize_grad_rows_clones(const float *g, const float *y_hat, const float *rstd, float *dx, size_t rows,
                                                        size_t n) {
    for (size_t r = 0; r < rows; r++) {
        const float *gr = g + r * n, *yr = y_hat + r * n;
        float *out = dx + r * n;
        // Σ g and Σ g·ŷ in one pass without writing, then the one pass that writes dx.
        float sum_g, sum_gy;
        sum_dot_lanes(gr, yr, n, &sum_g, &sum_gy);
        float mean_g = sum_g / (float)(n ? n : 1), mean_gy = sum_gy / (float)(n ? n : 1);
        float s = rstd[r];
        for (size_t j = 0; j < n; j++) out[j] = s * (gr[j] - mean_g - yr[j] * mean_gy);
    }
}
void lvdk_normalize_grad_rows(const float *g, const float *y_hat, const float *rstd, float *dx, size_t rows, size_t n) { lvdk_normalize_grad_rows_clones(g, y_hat, rstd, dx, rows, n); }

// ---- Winograd F(2×2, 3×3) for 3×3 convolutions, stride 1, padding 1 ----
// Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks" (2016):
//   Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A   over 4×4 input tiles d and 2×2 output tiles Y.
// Layouts: U[16][K][C] (transformed weights), V[16][C][ld] (transformed input tiles, tile index
// p = p0 + ty·TW + tx), M[16][K][ld] (their products, from 16 GEMMs M_i = U_i · V_i). Plane i
// starts at i·ps floats: the caller pads ps past K·C or C·ld so that the 16 (or 36) planes a
// transform touches at once do not fall on one cache set (a plane of 320·320 floats is 100 pages,
// and 36 lines of one set thrash the L1: the F(4×4) weight transform took a third of a conv).

// Rows first … first+count−1 of an H×W plane into `count` rows of `width` values, zero-padded:
// column j holds input column j−1, rows outside the plane are zeros (a tile's input window).
static inline void padded_rows(const float *plane, size_t H, size_t W, long first, int count, size_t width, float *d) {
    for (int i = 0; i < count; i++) {
        long r = first + i;
        float *row = d + (size_t)i * width;
        memset(row, 0, width * sizeof(float));
        if (r >= 0 && r < (long)H) memcpy(row + 1, plane + r * W, W * sizeof(float));
    }
}

// G for F(2×2, 3×3) and F(4×4, 3×3): U = G g Gᵀ ((m+2) × 3 each).
static const float winograd_g2[4][3] = {{1, 0, 0}, {0.5f, 0.5f, 0.5f}, {0.5f, -0.5f, 0.5f}, {0, 0, 1}};
static const float winograd_g4[6][3] = {{0.25f, 0, 0}, {-1.0f / 6, -1.0f / 6, -1.0f / 6}, {-1.0f / 6, 1.0f / 6, -1.0f / 6},
                                        {1.0f / 24, 1.0f / 12, 1.0f / 6}, {1.0f / 24, -1.0f / 12, 1.0f / 6}, {0, 0, 1}};

// Input channels a weight transform or its adjoint handles at once: every inner loop runs along
// contiguous channels of one plane (vectorised), and a block's planes stay in L1.
#define WINOGRAD_BLOCK 64
typedef float lvdk_line __attribute__((vector_size(64), aligned(64)));

// out[s] = Σ_t coef[t · cs] · source[t · ss + s] for s < count, skipping zero coefficients: one
// row of a transform matrix applied to `terms` rows of values (the transforms' adjoints below).
static inline __attribute__((always_inline)) void weighted_rows(float *out, size_t count, const float *coef, size_t cs,
                                                                size_t terms, const float *source, size_t ss) {
    for (size_t s = 0; s < count; s++) out[s] = 0;
    for (size_t t = 0; t < terms; t++) {
        float a = coef[t * cs];
        if (a == 0) continue;
        const float *row = source + t * ss;
        for (size_t s = 0; s < count; s++) out[s] += a * row[s];
    }
}

// U = G g Gᵀ for output channels k0 … k1−1 (g is K×C×3×3, U is [n²][K][C], n = m + 2). With
// `flipped`, g is the C×K×3×3 kernel of the convolution this one is the input gradient of, and
// the kernel used is that one flipped in space with its channels swapped: g'[k][c][e] =
// g[c][k][8 − e] (read in place: a flipped copy of a 1280-channel kernel took 10 ms).
static inline __attribute__((always_inline)) void winograd_weights_blocked(const float *G, size_t n, const float *g, size_t K,
                                                                           size_t C, int flipped, size_t k0, size_t k1,
                                                                           float *U, size_t ps) {
    float w[9][WINOGRAD_BLOCK], t[6][3][WINOGRAD_BLOCK];
    // Streaming stores need 64-byte aligned lines: U is, its planes are 16 floats apart, rows C.
    int streaming = C % 16 == 0 && ((uintptr_t)U & 63) == 0 && ps % 16 == 0;
    for (size_t k = k0; k < k1; k++) {
        for (size_t c0 = 0; c0 < C; c0 += WINOGRAD_BLOCK) {
            size_t cb = C - c0 < WINOGRAD_BLOCK ? C - c0 : WINOGRAD_BLOCK;
            // Transposes: left scalar, as vectorised they are gathers (slow on AMD's cores: the
            // AVX-512 build of this function took 0.067 s per conv 1280@16 forward against 0.056).
            if (flipped) {
                const float *source = g + (c0 * K + k) * 9;
#pragma clang loop vectorize(disable)
                for (size_t c = 0; c < cb; c++)
                    for (int e = 0; e < 9; e++) w[e][c] = source[c * K * 9 + 8 - e];
            } else {
                const float *source = g + (k * C + c0) * 9;
#pragma clang loop vectorize(disable)
                for (size_t c = 0; c < cb; c++)
                    for (int e = 0; e < 9; e++) w[e][c] = source[c * 9 + e];
            }
            // t = G g down the kernel's rows, then U = t Gᵀ along them.
            for (size_t i = 0; i < n; i++) {
                float g0 = G[i * 3], g1 = G[i * 3 + 1], g2 = G[i * 3 + 2];
                for (int b = 0; b < 3; b++)
                    for (size_t c = 0; c < cb; c++) t[i][b][c] = g0 * w[b][c] + g1 * w[3 + b][c] + g2 * w[6 + b][c];
            }
            for (size_t i = 0; i < n; i++)
                for (size_t j = 0; j < n; j++) {
                    float h0 = G[j * 3], h1 = G[j * 3 + 1], h2 = G[j * 3 + 2];
                    float *u = U + (i * n + j) * ps + k * C + c0;
                    if (streaming && cb == WINOGRAD_BLOCK) {
                        // Whole cache lines straight to memory: U is far larger than the caches, and
                        // a plain store would first read each line it fills.
                        for (size_t c = 0; c < cb; c += 16) {
                            lvdk_line line;
                            for (int e = 0; e < 16; e++) line[e] = h0 * t[i][0][c + e] + h1 * t[i][1][c + e] + h2 * t[i][2][c + e];
                            __builtin_nontemporal_store(line, (lvdk_line *)(u + c));
                        }
                    } else {
                        for (size_t c = 0; c < cb; c++) u[c] = h0 * t[i][0][c] + h1 * t[i][1][c] + h2 * t[i][2][c];
                    }
                }
        }
    }
#if defined(__x86_64__)
    if (streaming) __builtin_ia32_sfence();
#endif
}

// ∂g = Gᵀ ∂U G for output channels k0 … k1−1 (∂U is [n²][K][C], ∂g is K×C×3×3).
static inline __attribute__((always_inline)) void winograd_weights_adjoint_blocked(const float *G, size_t n, const float *dU, size_t C, size_t k0,
                                                    size_t k1, float *dg, size_t ps) {
    float r[3][6][WINOGRAD_BLOCK], o[9][WINOGRAD_BLOCK];
    for (size_t k = k0; k < k1; k++) {
        for (size_t c0 = 0; c0 < C; c0 += WINOGRAD_BLOCK) {
            size_t cb = C - c0 < WINOGRAD_BLOCK ? C - c0 : WINOGRAD_BLOCK;
            // r = Gᵀ ∂U down the planes' rows, then ∂g = r G along them.
            for (int a = 0; a < 3; a++)
                for (size_t j = 0; j < n; j++) weighted_rows(r[a][j], cb, G + a, 3, n, dU + j * ps + k * C + c0, n * ps);
            for (int a = 0; a < 3; a++)
                for (int b = 0; b < 3; b++) weighted_rows(o[a * 3 + b], cb, G + b, 3, n, r[a][0], WINOGRAD_BLOCK);
            float *target = dg + (k * C + c0) * 9;
#pragma clang loop vectorize(disable)
            for (size_t c = 0; c < cb; c++)
                for (int e = 0; e < 9; e++) target[c * 9 + e] = o[e][c];   // a transpose, scalar (above)
        }
    }
}

LVDK_CLONES static void lvdk_winograd_weights_clones(const float *g, size_t K, size_t C, int flipped, size_t k0, size_t k1, float *U,
                                                     size_t ps) {
    winograd_weights_blocked(&winograd_g2[0][0], 4, g, K, C, flipped, k0, k1, U, ps);
}
void lvdk_winograd_weights(const float *g, size_t K, size_t C, int flipped, size_t k0, size_t k1, float *U, size_t ps) { lvdk_winograd_weights_clones(g, K, C, flipped, k0, k1, U, ps); }

LVDK_CLONES static void lvdk_winograd_input_clones(const float *x, size_t H, size_t W, size_t c0, size_t c1, float *V,
                                                   size_t ld, size_t p0, size_t ps) {
    size_t TH = (H + 1) / 2, TW = (W + 1) / 2, PW = 2 * TW + 2;
    float d[4][PW], t[4][PW];
    for (size_t c = c0; c < c1; c++) {
        const float *plane = x + c * H * W;
        for (size_t ty = 0; ty < TH; ty++) {
            padded_rows(plane, H, W, (long)(2 * ty) - 1, 4, PW, &d[0][0]);
            for (size_t j = 0; j < PW; j++) {
                t[0][j] = d[0][j] - d[2][j];
                t[1][j] = d[1][j] + d[2][j];
                t[2][j] = d[2][j] - d[1][j];
                t[3][j] = d[1][j] - d[3][j];
            }
            for (int i = 0; i < 4; i++) {
                float *v0 = V + (size_t)(i * 4 + 0) * ps + c * ld + p0 + ty * TW;
                float *v1 = V + (size_t)(i * 4 + 1) * ps + c * ld + p0 + ty * TW;
                float *v2 = V + (size_t)(i * 4 + 2) * ps + c * ld + p0 + ty * TW;
                float *v3 = V + (size_t)(i * 4 + 3) * ps + c * ld + p0 + ty * TW;
                const float *row = t[i];
                for (size_t tx = 0; tx < TW; tx++) {
                    float a = row[2 * tx], b = row[2 * tx + 1], e = row[2 * tx + 2], f = row[2 * tx + 3];
                    v0[tx] = a - e;
                    v1[tx] = b + e;
                    v2[tx] = e - b;
                    v3[tx] = b - f;
                }
            }
        }
    }
}
void lvdk_winograd_input(const float *x, size_t H, size_t W, size_t c0, size_t c1, float *V, size_t ld, size_t p0, size_t ps) { lvdk_winograd_input_clones(x, H, W, c0, c1, V, ld, p0, ps); }

LVDK_CLONES static void lvdk_winograd_output_clones(const float *M, size_t ld, size_t p0, size_t H, size_t W, size_t k0,
                                                    size_t k1, float *out, size_t ps) {
    size_t TH = (H + 1) / 2, TW = (W + 1) / 2;
    for (size_t k = k0; k < k1; k++) {
        float *plane = out + k * H * W;
        for (size_t ty = 0; ty < TH; ty++) {
            const float *m[16];
            for (int i = 0; i < 16; i++) m[i] = M + (size_t)i * ps + k * ld + p0 + ty * TW;
            size_t y0 = 2 * ty, y1 = 2 * ty + 1;
            for (size_t tx = 0; tx < TW; tx++) {
                float s[4], r[4];
                for (int j = 0; j < 4; j++) {
                    s[j] = m[j][tx] + m[4 + j][tx] + m[8 + j][tx];
                    r[j] = m[4 + j][tx] - m[8 + j][tx] - m[12 + j][tx];
                }
                size_t x0 = 2 * tx, x1 = 2 * tx + 1;
                plane[y0 * W + x0] = s[0] + s[1] + s[2];
                if (x1 < W) plane[y0 * W + x1] = s[1] - s[2] - s[3];
                if (y1 < H) {
                    plane[y1 * W + x0] = r[0] + r[1] + r[2];
                    if (x1 < W) plane[y1 * W + x1] = r[1] - r[2] - r[3];
                }
            }
        }
    }
}
void lvdk_winograd_output(const float *M, size_t ld, size_t p0, size_t H, size_t W, size_t k0, size_t k1, float *out, size_t ps) { lvdk_winograd_output_clones(M, ld, p0, H, W, k0, k1, out, ps); }

// ---- Winograd F(4×4, 3×3) (Lavin & Gray, points 0, ±1, ±2) ----
//   Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A   over 6×6 input tiles d (stride 4) and 4×4 output tiles Y.
// 36 products per 16 outputs (direct: 144; F(2×2, 3×3): 64). Layouts as above with 36 planes.

LVDK_CLONES static void lvdk_winograd43_weights_clones(const float *g, size_t K, size_t C, int flipped, size_t k0, size_t k1, float *U,
                                                       size_t ps) {
    winograd_weights_blocked(&winograd_g4[0][0], 6, g, K, C, flipped, k0, k1, U, ps);
}
void lvdk_winograd43_weights(const float *g, size_t K, size_t C, int flipped, size_t k0, size_t k1, float *U, size_t ps) { lvdk_winograd43_weights_clones(g, K, C, flipped, k0, k1, U, ps); }

LVDK_CLONES static void lvdk_winograd43_input_clones(const float *x, size_t H, size_t W, size_t c0, size_t c1, float *V,
                                                     size_t ld, size_t p0, size_t ps) {
    size_t TH = (H + 3) / 4, TW = (W + 3) / 4, PW = 4 * TW + 4;
    float d[6][PW], t[6][PW], phase[4][TW + 1];
    for (size_t c = c0; c < c1; c++) {
        const float *plane = x + c * H * W;
        for (size_t ty = 0; ty < TH; ty++) {
            padded_rows(plane, H, W, (long)(4 * ty) - 1, 6, PW, &d[0][0]);
            // t = Bᵀ d, down the columns.
            for (size_t j = 0; j < PW; j++) {
                float d0 = d[0][j], d1 = d[1][j], d2 = d[2][j], d3 = d[3][j], d4 = d[4][j], d5 = d[5][j];
                t[0][j] = 4 * d0 - 5 * d2 + d4;
                t[1][j] = -4 * d1 - 4 * d2 + d3 + d4;
                t[2][j] = 4 * d1 - 4 * d2 - d3 + d4;
                t[3][j] = -2 * d1 - d2 + 2 * d3 + d4;
                t[4][j] = 2 * d1 - d2 - 2 * d3 + d4;
                t[5][j] = 4 * d1 - 5 * d3 + d5;
            }
            // v = t B along each tile's six columns 4tx … 4tx+5. The row is split into its four
            // phases first (phase q holds columns 4t+q), so every loop below runs on contiguous data.
            for (int i = 0; i < 6; i++) {
                const float *row = t[i];
                for (size_t u = 0; u <= TW; u++) {
                    phase[0][u] = row[4 * u];
                    phase[1][u] = row[4 * u + 1];
                    phase[2][u] = row[4 * u + 2];
                    phase[3][u] = row[4 * u + 3];
                }
                const float *e0 = phase[0], *e1 = phase[1], *e2 = phase[2], *e3 = phase[3], *e4 = phase[0] + 1, *e5 = phase[1] + 1;
                float *v0 = V + (size_t)(i * 6 + 0) * ps + c * ld + p0 + ty * TW;
                size_t stride = ps;
                float *v1 = v0 + stride, *v2 = v1 + stride, *v3 = v2 + stride, *v4 = v3 + stride, *v5 = v4 + stride;
                for (size_t tx = 0; tx < TW; tx++) {
                    v0[tx] = 4 * e0[tx] - 5 * e2[tx] + e4[tx];
                    v1[tx] = -4 * e1[tx] - 4 * e2[tx] + e3[tx] + e4[tx];
                    v2[tx] = 4 * e1[tx] - 4 * e2[tx] - e3[tx] + e4[tx];
                    v3[tx] = -2 * e1[tx] - e2[tx] + 2 * e3[tx] + e4[tx];
                    v4[tx] = 2 * e1[tx] - e2[tx] - 2 * e3[tx] + e4[tx];
                    v5[tx] = 4 * e1[tx] - 5 * e3[tx] + e5[tx];
                }
            }
        }
    }
}
void lvdk_winograd43_input(const float *x, size_t H, size_t W, size_t c0, size_t c1, float *V, size_t ld, size_t p0, size_t ps) { lvdk_winograd43_input_clones(x, H, W, c0, c1, V, ld, p0, ps); }

LVDK_CLONES static void lvdk_winograd43_output_clones(const float *M, size_t ld, size_t p0, size_t H, size_t W, size_t k0,
                                                      size_t k1, float *out, size_t ps) {
    size_t TH = (H + 3) / 4, TW = (W + 3) / 4;
    float s[4][6][TW], phase[4][TW];
    for (size_t k = k0; k < k1; k++) {
        float *plane = out + k * H * W;
        for (size_t ty = 0; ty < TH; ty++) {
            // s = Aᵀ m over the six rows of each tile column j, for all tiles of the row at once.
            for (int j = 0; j < 6; j++) {
                const float *a0 = M + (size_t)j * ps + k * ld + p0 + ty * TW;
                size_t stride = 6 * ps;
                const float *a1 = a0 + stride, *a2 = a1 + stride, *a3 = a2 + stride, *a4 = a3 + stride, *a5 = a4 + stride;
                for (size_t tx = 0; tx < TW; tx++) {
                    s[0][j][tx] = a0[tx] + a1[tx] + a2[tx] + a3[tx] + a4[tx];
                    s[1][j][tx] = a1[tx] - a2[tx] + 2 * a3[tx] - 2 * a4[tx];
                    s[2][j][tx] = a1[tx] + a2[tx] + 4 * a3[tx] + 4 * a4[tx];
                    s[3][j][tx] = a1[tx] - a2[tx] + 8 * a3[tx] - 8 * a4[tx] + a5[tx];
                }
            }
            // y = s A along each output row, into four phases, then interleaved into the plane.
            for (int i = 0; i < 4; i++) {
                size_t y = 4 * ty + i;
                if (y >= H) break;
                const float *r0 = s[i][0], *r1 = s[i][1], *r2 = s[i][2], *r3 = s[i][3], *r4 = s[i][4], *r5 = s[i][5];
                for (size_t tx = 0; tx < TW; tx++) {
                    phase[0][tx] = r0[tx] + r1[tx] + r2[tx] + r3[tx] + r4[tx];
                    phase[1][tx] = r1[tx] - r2[tx] + 2 * r3[tx] - 2 * r4[tx];
                    phase[2][tx] = r1[tx] + r2[tx] + 4 * r3[tx] + 4 * r4[tx];
                    phase[3][tx] = r1[tx] - r2[tx] + 8 * r3[tx] - 8 * r4[tx] + r5[tx];
                }
                float *line = plane + y * W;
#pragma clang loop vectorize(disable)   // interleaving: a gather if vectorised (slow on AMD's cores)
                for (size_t xcol = 0; xcol < W; xcol++) line[xcol] = phase[xcol & 3][xcol >> 2];
            }
        }
    }
}
void lvdk_winograd43_output(const float *M, size_t ld, size_t p0, size_t H, size_t W, size_t k0, size_t k1, float *out, size_t ps) { lvdk_winograd43_output_clones(M, ld, p0, H, W, k0, k1, out, ps); }

// ---- The weight gradient through either Winograd form (Lavin & Gray §5) ----
// Y = Aᵀ [U ⊙ V] A with U = G g Gᵀ is linear in g, so for a loss L:
//   ∂L/∂U = Σ over tiles (A ∂Y Aᵀ) ⊙ V        (one GEMM per plane: Z_i · V_iᵀ)
//   ∂L/∂g = Gᵀ (∂L/∂U) G.
// The two transforms below are the adjoints of the output and weight transforms, for output
// tiles of m = 2 or 4, read from these tables (Aᵀ is m × (m+2), G is (m+2) × 3).
static const float winograd_at2[2][4] = {{1, 1, 1, 0}, {0, 1, -1, -1}};
static const float winograd_at4[4][6] = {{1, 1, 1, 1, 1, 0}, {0, 1, -1, 2, -2, 0}, {0, 1, 1, 4, 4, 0}, {0, 1, -1, 8, -8, 1}};

// Z = A ∂Y Aᵀ for every m×m tile of output channels k0 … k1−1 of one image (∂Y is K×H×W;
// rows and columns past the plane are zeros), into Z[(m+2)²][K][ld] at tile p0 + ty·TW + tx.
// Tile rows at a time: ≥ 256 tiles per strip where the plane is that large, so that each loop
// below runs along a strip's tiles — contiguous in Z — rather than along one row's few tiles.
static inline __attribute__((always_inline)) void winograd_output_adjoint_strips(const float *at, size_t m, const float *dy, size_t H, size_t W,
                                                  size_t k0, size_t k1, float *Z, size_t ld, size_t p0, size_t ps) {
    size_t n = m + 2, TH = (H + m - 1) / m, TW = (W + m - 1) / m;
    size_t rows = TW >= 256 ? 1 : 256 / TW;
    if (rows > TH) rows = TH;
    size_t S = rows * TW;
    // P[i·m + q][s]: ∂Y at row i, column q of strip tile s; T = Aᵀ-weighted sums of P's rows.
    float P[m * m][S], T[n * m][S];
    for (size_t k = k0; k < k1; k++) {
        const float *plane = dy + k * H * W;
        for (size_t ty0 = 0; ty0 < TH; ty0 += rows) {
            size_t count = (rows < TH - ty0 ? rows : TH - ty0) * TW;
            for (size_t r = 0; r * TW < count; r++)
                for (size_t i = 0; i < m; i++) {
                    size_t y = m * (ty0 + r) + i;
                    for (size_t q = 0; q < m; q++) {
                        float *target = P[i * m + q] + r * TW;
#pragma clang loop vectorize(disable)   // every m-th value: a gather if vectorised (slow, above)
                        for (size_t tx = 0; tx < TW; tx++) {
                            size_t x = m * tx + q;
                            target[tx] = y < H && x < W ? plane[y * W + x] : 0;
                        }
                    }
                }
            // T[j][q] = Σ_i Aᵀ[i][j] · P[i][q]  (A ∂Y down the tiles' columns)
            for (size_t j = 0; j < n; j++)
                for (size_t q = 0; q < m; q++) weighted_rows(T[j * m + q], count, at + j, n, m, P[q], m * S);
            // Z[j·n + l] = Σ_q Aᵀ[q][l] · T[j][q]  (then · Aᵀ along the rows)
            for (size_t j = 0; j < n; j++)
                for (size_t l = 0; l < n; l++)
                    weighted_rows(Z + (j * n + l) * ps + k * ld + p0 + ty0 * TW, count, at + l, n, m, T[j * m], S);
        }
    }
}

LVDK_CLONES static void lvdk_winograd_output_adjoint_clones(const float *dy, size_t H, size_t W, size_t m, size_t k0,
                                                            size_t k1, float *Z, size_t ld, size_t p0, size_t ps) {
    if (m == 4) winograd_output_adjoint_strips(&winograd_at4[0][0], 4, dy, H, W, k0, k1, Z, ld, p0, ps);
    else winograd_output_adjoint_strips(&winograd_at2[0][0], 2, dy, H, W, k0, k1, Z, ld, p0, ps);
}
void lvdk_winograd_output_adjoint(const float *dy, size_t H, size_t W, size_t m, size_t k0, size_t k1, float *Z, size_t ld, size_t p0, size_t ps) { lvdk_winograd_output_adjoint_clones(dy, H, W, m, k0, k1, Z, ld, p0, ps); }

// ∂g = Gᵀ ∂U G for output channels k0 … k1−1 (∂U is [(m+2)²][K][C], ∂g is K×C×3×3).
LVDK_CLONES static void lvdk_winograd_weights_adjoint_clones(const float *dU, size_t C, size_t m, size_t k0, size_t k1,
                                                             float *dg, size_t ps) {
    if (m == 4) winograd_weights_adjoint_blocked(&winograd_g4[0][0], 6, dU, C, k0, k1, dg, ps);
    else winograd_weights_adjoint_blocked(&winograd_g2[0][0], 4, dU, C, k0, k1, dg, ps);
}
void lvdk_winograd_weights_adjoint(const float *dU, size_t C, size_t m, size_t k0, size_t k1, float *dg, size_t ps) { lvdk_winograd_weights_adjoint_clones(dU, C, m, k0, k1, dg, ps); }

// ---- Winograd F(4, 3) along one axis: UNet3D's temporal (3, 1, 1) convolution ----
// On (C, F, P) planes (P = H·W positions) with taps over frames, padding 1: output frames
// 4t … 4t+3 from input frames 4t−1 … 4t+4, y = Aᵀ [(G g) ⊙ (Bᵀ d)] per position, 6 GEMMs of
// (O × C) by (C × T·P) instead of 3 of (O × C) by (C × F·P): half the multiplications.
// Layouts: U[6][O][C], V[6][C][T·P] (column t·P + p), M[6][O][T·P].
static const float winograd_bt4[6][6] = {{4, 0, -5, 0, 1, 0}, {0, -4, -4, 1, 1, 0}, {0, 4, -4, -1, 1, 0},
                                         {0, -2, -1, 2, 1, 0}, {0, 2, -1, -2, 1, 0}, {0, 4, 0, -5, 0, 1}};

// U = G g for output channels k0 … k1−1 (g is O×C×3).
LVDK_CLONES static void lvdk_winograd1d_weights_clones(const float *g, size_t O, size_t C, size_t k0, size_t k1, float *U) {
    for (size_t k = k0; k < k1; k++)
        for (size_t c = 0; c < C; c++) {
            const float *w = g + (k * C + c) * 3;
            for (size_t xi = 0; xi < 6; xi++)
                U[(xi * O + k) * C + c] = winograd_g4[xi][0] * w[0] + winograd_g4[xi][1] * w[1] + winograd_g4[xi][2] * w[2];
        }
}
void lvdk_winograd1d_weights(const float *g, size_t O, size_t C, size_t k0, size_t k1, float *U) { lvdk_winograd1d_weights_clones(g, O, C, k0, k1, U); }

// V = Bᵀ d for input channels c0 … c1−1 of one (C, F, P) image; frames outside 0 … F−1 are zeros.
LVDK_CLONES static void lvdk_winograd1d_input_clones(const float *x, size_t C, size_t F, size_t P, size_t c0, size_t c1, float *V) {
    size_t T = (F + 3) / 4, ld = T * P;
    for (size_t c = c0; c < c1; c++) {
        for (size_t t = 0; t < T; t++) {
            for (size_t xi = 0; xi < 6; xi++) {
                float *v = V + (xi * C + c) * ld + t * P;
                for (size_t p = 0; p < P; p++) v[p] = 0;
                for (size_t i = 0; i < 6; i++) {
                    long f = (long)(4 * t + i) - 1;
                    float a = winograd_bt4[xi][i];
                    if (a == 0 || f < 0 || f >= (long)F) continue;
                    const float *row = x + (c * F + (size_t)f) * P;
                    for (size_t p = 0; p < P; p++) v[p] += a * row[p];
                }
            }
        }
    }
}
void lvdk_winograd1d_input(const float *x, size_t C, size_t F, size_t P, size_t c0, size_t c1, float *V) { lvdk_winograd1d_input_clones(x, C, F, P, c0, c1, V); }

// y = Aᵀ m (+ bias) for output channels k0 … k1−1 of one (O, F, P) image; frames past F dropped.
LVDK_CLONES static void lvdk_winograd1d_output_clones(const float *M, size_t O, size_t F, size_t P, size_t k0, size_t k1,
                                                      const float *bias, float *y) {
    size_t T = (F + 3) / 4, ld = T * P;
    for (size_t k = k0; k < k1; k++) {
        float b = bias ? bias[k] : 0;
        for (size_t t = 0; t < T; t++)
            for (size_t j = 0; j < 4 && 4 * t + j < F; j++) {
                float *out = y + (k * F + 4 * t + j) * P;
                for (size_t p = 0; p < P; p++) out[p] = b;
                for (size_t xi = 0; xi < 6; xi++) {
                    float a = winograd_at4[j][xi];
                    if (a == 0) continue;
                    const float *m = M + (xi * O + k) * ld + t * P;
                    for (size_t p = 0; p < P; p++) out[p] += a * m[p];
                }
            }
    }
}
void lvdk_winograd1d_output(const float *M, size_t O, size_t F, size_t P, size_t k0, size_t k1, const float *bias, float *y) { lvdk_winograd1d_output_clones(M, O, F, P, k0, k1, bias, y); }

// Its weight gradient, as in two dimensions: Z = A ∂Y per frame tile (output channels k0 … k1−1
// of one (O, F, P) image, frames past F zero) into Z[6][O][T·P]; ∂U_ξ = Σ Z_ξ · V_ξᵀ by GEMM;
// then ∂g = Gᵀ ∂U.
LVDK_CLONES static void lvdk_winograd1d_output_adjoint_clones(const float *dy, size_t O, size_t F, size_t P, size_t k0, size_t k1,
                                                              float *Z) {
    size_t T = (F + 3) / 4, ld = T * P;
    for (size_t k = k0; k < k1; k++)
        for (size_t t = 0; t < T; t++)
            for (size_t xi = 0; xi < 6; xi++) {
                float *z = Z + (xi * O + k) * ld + t * P;
                for (size_t p = 0; p < P; p++) z[p] = 0;
                for (size_t j = 0; j < 4 && 4 * t + j < F; j++) {
                    float a = winograd_at4[j][xi];
                    if (a == 0) continue;
                    const float *row = dy + (k * F + 4 * t + j) * P;
                    for (size_t p = 0; p < P; p++) z[p] += a * row[p];
                }
            }
}
void lvdk_winograd1d_output_adjoint(const float *dy, size_t O, size_t F, size_t P, size_t k0, size_t k1, float *Z) { lvdk_winograd1d_output_adjoint_clones(dy, O, F, P, k0, k1, Z); }

LVDK_CLONES static void lvdk_winograd1d_weights_adjoint_clones(const float *dU, size_t O, size_t C, size_t k0, size_t k1, float *dg) {
    for (size_t k = k0; k < k1; k++)
        for (size_t c = 0; c < C; c++)
            for (size_t i = 0; i < 3; i++) {
                float total = 0;
                for (size_t xi = 0; xi < 6; xi++) total += winograd_g4[xi][i] * dU[(xi * O + k) * C + c];
                dg[(k * C + c) * 3 + i] = total;
            }
}
void lvdk_winograd1d_weights_adjoint(const float *dU, size_t O, size_t C, size_t k0, size_t k1, float *dg) { lvdk_winograd1d_weights_adjoint_clones(dU, O, C, k0, k1, dg); }

// GEGLU over rows of 2d values (value half, then gate half): y = value · gelu(gate).
LVDK_CLONES static void lvdk_geglu_rows_clones(const float *x, float *y, size_t rows, size_t d) {
    for (size_t r = 0; r < rows; r++) {
        const float *value = x + r * 2 * d, *gate = value + d;
        float *out = y + r * d;
        for (size_t j = 0; j < d; j++) out[j] = value[j] * 0.5f * gate[j] * (1.0f + fast_erf(gate[j] * 0.70710678118654752f));
    }
}
void lvdk_geglu_rows(const float *x, float *y, size_t rows, size_t d) { lvdk_geglu_rows_clones(x, y, rows, d); }

// Its gradient: d value = g · gelu(gate), d gate = g · value · gelu'(gate).
LVDK_CLONES static void lvdk_geglu_grad_rows_clones(const float *g, const float *x, float *dx, size_t rows, size_t d) {
    for (size_t r = 0; r < rows; r++) {
        const float *value = x + r * 2 * d, *gate = value + d, *gr = g + r * d;
        float *dvalue = dx + r * 2 * d, *dgate = dvalue + d;
        for (size_t j = 0; j < d; j++) {
            float cdf = 0.5f * (1.0f + fast_erf(gate[j] * 0.70710678118654752f));
            float pdf = fast_exp(-0.5f * gate[j] * gate[j]) * 0.39894228040143268f;
            dvalue[j] = gr[j] * gate[j] * cdf;
            dgate[j] = gr[j] * value[j] * (cdf + gate[j] * pdf);
        }
    }
}
void lvdk_geglu_grad_rows(const float *g, const float *x, float *dx, size_t rows, size_t d) { lvdk_geglu_grad_rows_clones(g, x, dx, rows, d); }
