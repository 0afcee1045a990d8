/* gemm.c -- the only file that talks to BLAS: GEMM dispatch, BLAS threads, backend report. */
#include "util.h"
#include "gemm.h"

#include <cblas.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* At or below this many multiply-adds bp__gemm uses the plain loop instead of BLAS.
 * Measured with `bp_bench --case gemm-crossover` (docs/performance.md): on the reference
 * machine (AMD EPYC Zen 4, OpenBLAS 0.3.21 Cooperlake kernels, -O3) the loop wins only at
 * 2x2x2 (30 vs 36 ns); from 3x3x3 on OpenBLAS's small-matrix kernels win (4: 73 vs 38 ns,
 * 8: 329 vs 58 ns). Single-row products (batch 1, the online-training case) never reach
 * here: the dense layer handles n = 1 with its own row loops (layer_dense.c). */
const size_t bp__gemm_small_threshold = 8;

/* The plain loops, written for tiny shapes (batch 1, tens of neurons): no zero-fill pass and
 * no call per row; the first product term assigns instead of accumulating, so beta = 0 costs
 * nothing. Inner loops run over contiguous memory so larger shapes still vectorise. */
static inline float beta_term(float beta, const float *cij)
{
    return beta == 0.0f ? 0.0f : beta * *cij;
}

void bp__gemm_naive(int trans_a, int trans_b, size_t m, size_t n, size_t k, float alpha,
                    const float *a, size_t lda, const float *b, size_t ldb, float beta, float *c,
                    size_t ldc)
{
    if (k == 0) {
        for (size_t i = 0; i < m; i++)
            for (size_t j = 0; j < n; j++)
                c[i * ldc + j] = beta_term(beta, c + i * ldc + j);
        return;
    }
    if (trans_b) {
        /* C[i,j] = alpha * dot(op(A)[i,:], B[j,:]) + beta C[i,j] */
        for (size_t i = 0; i < m; i++) {
            float *restrict ci = c + i * ldc;
            for (size_t j = 0; j < n; j++) {
                const float *restrict bj = b + j * ldb;
                float s = 0.0f;
                if (!trans_a) {
                    const float *restrict ai = a + i * lda;
                    for (size_t p = 0; p < k; p++)
                        s += ai[p] * bj[p];
                } else {
                    for (size_t p = 0; p < k; p++)
                        s += a[p * lda + i] * bj[p];
                }
                ci[j] = alpha * s + beta_term(beta, ci + j);
            }
        }
        return;
    }
    /* C[i,:] = alpha * sum_p op(A)[i,p] B[p,:] + beta C[i,:]: contiguous rows of B. */
    for (size_t i = 0; i < m; i++) {
        float *restrict ci = c + i * ldc;
        const float a0 = alpha * (trans_a ? a[i] : a[i * lda]);
        const float *restrict b0 = b;
        if (beta == 0.0f) {
            for (size_t j = 0; j < n; j++)
                ci[j] = a0 * b0[j];
        } else {
            for (size_t j = 0; j < n; j++)
                ci[j] = a0 * b0[j] + beta * ci[j];
        }
        for (size_t p = 1; p < k; p++) {
            const float aip = alpha * (trans_a ? a[p * lda + i] : a[i * lda + p]);
            const float *restrict bp = b + p * ldb;
            for (size_t j = 0; j < n; j++)
                ci[j] += aip * bp[j];
        }
    }
}

void bp__gemm_blas(int trans_a, int trans_b, size_t m, size_t n, size_t k, float alpha,
                   const float *a, size_t lda, const float *b, size_t ldb, float beta, float *c,
                   size_t ldc)
{
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, (blasint)m, (blasint)n, (blasint)k, alpha, a,
                (blasint)lda, b, (blasint)ldb, beta, c, (blasint)ldc);
}

void bp__gemm(int trans_a, int trans_b, size_t m, size_t n, size_t k, float alpha, const float *a,
              size_t lda, const float *b, size_t ldb, float beta, float *c, size_t ldc)
{
    if (m == 0 || n == 0) return;
    if (m * n * k <= bp__gemm_small_threshold)
        bp__gemm_naive(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    else
        bp__gemm_blas(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

/* ------------------------------------------------------------------------------------------
 * Threads
 * ----------------------------------------------------------------------------------------*/

int bp__gemm_get_threads(void)
{
    const int t = openblas_get_num_threads();
    return t > 0 ? t : 1;
}

void bp__gemm_set_threads(int threads)
{
    openblas_set_num_threads(threads);
}

/* ------------------------------------------------------------------------------------------
 * Backend report
 * ----------------------------------------------------------------------------------------*/

static pthread_once_t backend_once = PTHREAD_ONCE_INIT;
static char backend_text[512]; /* written once, under pthread_once; read-only after */

/* Cores OpenBLAS may pick that use no AVX instructions (its pre-Sandybridge x86 kernels). */
static int core_is_pre_avx(const char *core)
{
    static const char *const old[] = {
        "Prescott",  "Core2",      "Penryn",    "Dunnington", "Nehalem", "Atom",
        "Katmai",    "Coppermine", "Northwood", "Banias",     "Opteron", "Opteron_SSE3",
        "Barcelona", "Bobcat",     "Nano",      "generic",    "Unknown"};
    for (size_t i = 0; i < sizeof old / sizeof old[0]; i++)
        if (strcmp(core, old[i]) == 0) return 1;
    return 0;
}

/* Cores OpenBLAS may pick whose kernels use AVX-512. */
static int core_is_avx512(const char *core)
{
    return strcmp(core, "SkylakeX") == 0 || strcmp(core, "Cooperlake") == 0 ||
           strcmp(core, "SapphireRapids") == 0;
}

static void build_backend_text(void)
{
    const char *core = openblas_get_corename();
    const char *config = openblas_get_config();
    int avx2 = 0, avx512 = 0, avx512_skx = 0;
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
    __builtin_cpu_init();
    avx2 = __builtin_cpu_supports("avx2");
    avx512 = __builtin_cpu_supports("avx512f");
    /* what OpenBLAS's SkylakeX kernels need */
    avx512_skx = avx512 && __builtin_cpu_supports("avx512bw") &&
                 __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
#endif
    if (core == NULL) core = "unknown";
    if (config == NULL) config = "OpenBLAS";
    int len = snprintf(backend_text, sizeof backend_text, "%s; core=%s; cpu=%s", config, core,
                       avx512 ? "avx512"
                       : avx2 ? "avx2"
                              : "pre-avx2");
    if (len <= 0 || (size_t)len >= sizeof backend_text) return;
    if ((avx2 || avx512) && core_is_pre_avx(core)) {
        snprintf(backend_text + len, sizeof backend_text - (size_t)len,
                 "; hint: OpenBLAS did not recognise this CPU and runs pre-AVX kernels: "
                 "set OPENBLAS_CORETYPE=%s for ~4x faster GEMM",
                 avx512 ? "SkylakeX (or Haswell)" : "Haswell");
    } else if (avx512_skx && !core_is_avx512(core)) {
        /* An AVX-512 CPU held to older kernels: by an OPENBLAS_CORETYPE in the environment
         * (which OpenBLAS obeys over its own detection) or by a detection that does not know
         * the CPU. */
        const char *env = getenv("OPENBLAS_CORETYPE");
        if (env != NULL && env[0] != '\0')
            snprintf(backend_text + len, sizeof backend_text - (size_t)len,
                     "; hint: OPENBLAS_CORETYPE=%.32s in the environment holds this AVX-512 CPU "
                     "to older kernels: set OPENBLAS_CORETYPE=SkylakeX (or unset it) for "
                     "~1.8x faster GEMM",
                     env);
        else
            snprintf(backend_text + len, sizeof backend_text - (size_t)len,
                     "; hint: OpenBLAS runs older kernels on this AVX-512 CPU: set "
                     "OPENBLAS_CORETYPE=SkylakeX for its AVX-512 kernels (~1.8x faster GEMM)");
    }
}

const char *bp_backend_info(void)
{
    pthread_once(&backend_once, build_backend_text);
    return backend_text;
}
