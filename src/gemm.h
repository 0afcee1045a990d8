/*
 * gemm.h -- matrix products (gemm.c is the only file that calls cblas_*).
 */
#ifndef BP_GEMM_H
#define BP_GEMM_H

#include "util.h"

/* ------------------------------------------------------------------------------------------
 * GEMM (gemm.c is the only file that calls cblas_*)
 * ----------------------------------------------------------------------------------------*/

/* Row-major C[m x n] = alpha * op(A) op(B) + beta * C, op(X) = X or X^T (trans != 0).
 * A is [m x k] (or [k x m] when transposed), B is [k x n] (or [n x k]). Small products are
 * computed by a plain loop, larger ones by BLAS (threshold: bp__gemm_small_threshold). */
void bp__gemm(int trans_a, int trans_b, size_t m, size_t n, size_t k, float alpha, const float *a,
              size_t lda, const float *b, size_t ldb, float beta, float *c, size_t ldc);
/* The two paths, exposed for tests and benchmarks. */
void bp__gemm_naive(int trans_a, int trans_b, size_t m, size_t n, size_t k, float alpha,
                    const float *a, size_t lda, const float *b, size_t ldb, float beta, float *c,
                    size_t ldc);
void bp__gemm_blas(int trans_a, int trans_b, size_t m, size_t n, size_t k, float alpha,
                   const float *a, size_t lda, const float *b, size_t ldb, float beta, float *c,
                   size_t ldc);
/* m*n*k at or below which bp__gemm uses the loop (measured, see docs/performance.md). */
extern const size_t bp__gemm_small_threshold;

/* BLAS's thread count (at least 1) and setting it: the thread budget of bp_set_num_threads()
 * lives in workers.c, which asks and sets it through these two. */
int bp__gemm_get_threads(void);
void bp__gemm_set_threads(int threads);

#endif /* BP_GEMM_H */
