// Internal vector kernels of the runtime (not part of the plugin ABI). Each runs on the
// calling thread over contiguous floats; the runtime splits work across threads.
#ifndef LVD_KERNELS_H
#define LVD_KERNELS_H

#include <stddef.h>

void lvdk_exp(const float *x, float *y, size_t n);
void lvdk_silu(const float *x, float *y, size_t n);
void lvdk_gelu(const float *x, float *y, size_t n);
/// y = g · silu'(x), y = g · gelu'(x)
void lvdk_silu_grad(const float *g, const float *x, float *y, size_t n);
void lvdk_gelu_grad(const float *g, const float *x, float *y, size_t n);
/// Softmax (or log-softmax when `log` is non-zero) of `rows` rows of length n, `ld` floats apart.
/// Out of place with ld ≥ n rounded up to 16, a row's values n… up to that are read and written (0).
void lvdk_softmax_rows(const float *x, float *y, size_t rows, size_t n, size_t ld, int log);
void lvdk_group_norm_rows(const float *x, float *y, size_t first, size_t rows, size_t groups, size_t channels, size_t plane,
                          float eps, const float *weight, const float *bias, int silu);

/// Sum and maximum (−inf when empty) of n floats.
float lvdk_sum(const float *x, size_t n);
float lvdk_max(const float *x, size_t n);
/// Each row of length n to zero mean and unit (biased) variance; writes mean and 1/std per row.
void lvdk_normalize_rows(const float *x, float *y, size_t rows, size_t n, float eps, float *mean_out, float *rstd_out);
/// Softmax backward per row: dx = y · (g − Σ g·y).
void lvdk_softmax_grad_rows(const float *g, const float *y, float *dx, size_t rows, size_t n);
/// Row-normalisation backward: dx = rstd · (g − mean(g) − ŷ · mean(g · ŷ)).
void lvdk_normalize_grad_rows(const float *g, const float *y_hat, const float *rstd, float *dx, size_t rows, size_t n);
/// Winograd F(2×2, 3×3), stride 1, padding 1 (kernels.c describes the layouts); `ps` is the
/// stride in floats between the planes of U, V, M or Z.
void lvdk_winograd_weights(const float *g, size_t K, size_t C, int flipped, size_t k0, size_t k1, float *U, size_t ps);
void lvdk_winograd_input(const float *x, size_t H, size_t W, size_t c0, size_t c1, float *V, size_t ld, size_t p0, size_t ps);
void lvdk_winograd_output(const float *M, size_t ld, size_t p0, size_t H, size_t W, size_t k0, size_t k1, float *out, size_t ps);
/// Winograd F(4×4, 3×3): 6×6 input tiles, 36 products; the same layouts with 36 in place of 16.
void lvdk_winograd43_weights(const float *g, size_t K, size_t C, int flipped, size_t k0, size_t k1, float *U, size_t ps);
void lvdk_winograd43_input(const float *x, size_t H, size_t W, size_t c0, size_t c1, float *V, size_t ld, size_t p0, size_t ps);
void lvdk_winograd43_output(const float *M, size_t ld, size_t p0, size_t H, size_t W, size_t k0, size_t k1, float *out, size_t ps);
void lvdk_winograd_output_adjoint(const float *dy, size_t H, size_t W, size_t m, size_t k0, size_t k1, float *Z, size_t ld, size_t p0, size_t ps);
void lvdk_winograd_weights_adjoint(const float *dU, size_t C, size_t m, size_t k0, size_t k1, float *dg, size_t ps);
void lvdk_winograd1d_weights(const float *g, size_t O, size_t C, size_t k0, size_t k1, float *U);
void lvdk_winograd1d_input(const float *x, size_t C, size_t F, size_t P, size_t c0, size_t c1, float *V);
void lvdk_winograd1d_output(const float *M, size_t O, size_t F, size_t P, size_t k0, size_t k1, const float *bias, float *y);
void lvdk_winograd1d_output_adjoint(const float *dy, size_t O, size_t F, size_t P, size_t k0, size_t k1, float *Z);
void lvdk_winograd1d_weights_adjoint(const float *dU, size_t O, size_t C, size_t k0, size_t k1, float *dg);
/// GEGLU over rows of 2d (value, gate): y = value · gelu(gate), and its gradient.
void lvdk_geglu_rows(const float *x, float *y, size_t rows, size_t d);
void lvdk_geglu_grad_rows(const float *g, const float *x, float *dx, size_t rows, size_t d);

#endif
