/* test_gemm.c -- the plain-loop GEMM against the BLAS path (NMSE), every transpose pair,
 * alpha and beta, and the dispatcher on both sides of its threshold. */
#include "test_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "gemm.h"

/* Normalised mean squared error of got against ref. */
static double nmse(const float *got, const float *ref, size_t count)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < count; i++) {
        const double d = (double)got[i] - (double)ref[i];
        num += d * d;
        den += (double)ref[i] * (double)ref[i];
    }
    return den > 0 ? num / den : num;
}

static void check_shape(size_t m, size_t n, size_t k, int ta, int tb, float alpha, float beta,
                        uint64_t *st)
{
    /* Leading dimensions larger than the rows, to catch stride mistakes. */
    const size_t lda = (ta ? m : k) + 3, ldb = (tb ? k : n) + 2, ldc = n + 1;
    const size_t arows = ta ? k : m, brows = tb ? n : k;
    float *a = malloc(arows * lda * sizeof *a), *b = malloc(brows * ldb * sizeof *b);
    float *c0 = malloc(m * ldc * sizeof *c0), *c1 = malloc(m * ldc * sizeof *c1);
    float *c2 = malloc(m * ldc * sizeof *c2);
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(c0);
    assert_non_null(c1);
    assert_non_null(c2);
    bp_test_fill_uniform(a, arows * lda, -1, 1, st);
    bp_test_fill_uniform(b, brows * ldb, -1, 1, st);
    bp_test_fill_uniform(c0, m * ldc, -1, 1, st);
    memcpy(c1, c0, m * ldc * sizeof *c0);
    memcpy(c2, c0, m * ldc * sizeof *c0);
    bp__gemm_naive(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c0, ldc);
    bp__gemm_blas(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c1, ldc);
    bp__gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c2, ldc);
    const double e = nmse(c0, c1, m * ldc);
    if (!(e < 1e-10)) {
        print_error("m %zu n %zu k %zu ta %d tb %d alpha %g beta %g: NMSE %g\n", m, n, k, ta, tb,
                    (double)alpha, (double)beta, e);
        fail();
    }
    assert_true(nmse(c2, c1, m * ldc) < 1e-10);
    /* Padding columns (j >= n) are never written. */
    for (size_t i = 0; i < m; i++)
        for (size_t j = n; j < ldc; j++)
            assert_true(c0[i * ldc + j] == c1[i * ldc + j]);
    free(a), free(b), free(c0), free(c1), free(c2);
}

static void naive_matches_blas_for_every_transpose_alpha_and_beta(void **state)
{
    (void)state;
    static const size_t shapes[][3] = {{1, 1, 1},   {1, 4, 2},    {4, 1, 8},
                                       {2, 2, 2},   {3, 5, 7},    {16, 9, 1},
                                       {1, 33, 17}, {17, 31, 23}, {64, 10, 128}};
    static const float alphas[] = {1.0f, -0.5f}, betas[] = {0.0f, 1.0f, 0.25f};
    uint64_t st = 11;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++)
                for (size_t ai = 0; ai < 2; ai++)
                    for (size_t bi = 0; bi < 3; bi++)
                        check_shape(shapes[s][0], shapes[s][1], shapes[s][2], ta, tb, alphas[ai],
                                    betas[bi], &st);
}

static void zero_inner_dimension_scales_c_by_beta(void **state)
{
    (void)state;
    float c[4] = {1, 2, 3, 4};
    const float a[1] = {0}, b[1] = {0};
    bp__gemm_naive(0, 0, 2, 2, 0, 1.0f, a, 1, b, 2, 0.5f, c, 2);
    assert_close(c[0], 0.5, 0, 0);
    assert_close(c[3], 2.0, 0, 0);
    bp__gemm_naive(0, 1, 2, 2, 0, 1.0f, a, 1, b, 1, 0.0f, c, 2);
    for (int i = 0; i < 4; i++)
        assert_close(c[i], 0, 0, 0);
}

static void beta_zero_ignores_nan_in_c(void **state)
{
    (void)state;
    /* BLAS semantics: with beta = 0, C is not read (NaN garbage must not leak through). */
    const float a[4] = {1, 2, 3, 4}, b[4] = {1, 0, 0, 1};
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            float c[4] = {NAN, NAN, NAN, NAN};
            bp__gemm_naive(ta, tb, 2, 2, 2, 1.0f, a, 2, b, 2, 0.0f, c, 2);
            for (int i = 0; i < 4; i++)
                assert_true(isfinite(c[i]));
        }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        bp_add_test(naive_matches_blas_for_every_transpose_alpha_and_beta),
        bp_add_test(zero_inner_dimension_scales_c_by_beta),
        bp_add_test(beta_zero_ignores_nan_in_c),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
