/* gemm.c -- the only file that talks to BLAS: GEMM dispatch, BLAS threads, backend report. */
#include "internal.h"

#include <cblas.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>


/* At or below this many multiply-adds bp__gemm uses the plain loop instead of BLAS.
 * Measure with `bench/bp_bench --case gemm-crossover` (docs/performance.md). On the reference
 * machine (AMD EPYC Zen 4, OpenBLAS 0.3.21 Cooperlake kernels, Release build, 1 thread) BLAS
 * won for every square size from 2x2x2 up (2: 21 vs 29 ns, 16: 105 vs 756 ns), so this value
 * is not yet backed by a measurement; re-measure non-square layer shapes (n = 1) before
 * changing it. */
const size_t bp__gemm_small_threshold = 4096;

void bp__gemm_naive(int trans_a, int trans_b, size_t m, size_t n, size_t k, float alpha,
                    const float *a, size_t lda, const float *b, size_t ldb, float beta,
                    float *c, size_t ldc)
{
    for (size_t i = 0; i < m; i++) {
        float *ci = c + i * ldc;
        if (beta == 0.0f) {
            for (size_t j = 0; j < n; j++) ci[j] = 0.0f;
        } else if (beta != 1.0f) {
            for (size_t j = 0; j < n; j++) ci[j] *= beta;
        }
        if (!trans_b) {
            /* C[i,:] += alpha * A[i,p] * B[p,:]: contiguous inner loop over j. */
            for (size_t p = 0; p < k; p++) {
                const float aip = alpha * (trans_a ? a[p * lda + i] : a[i * lda + p]);
                const float *bp = b + p * ldb;
                for (size_t j = 0; j < n; j++) ci[j] += aip * bp[j];
            }
        } else {
            /* C[i,j] += alpha * dot(A[i,:], B[j,:]). */
            for (size_t j = 0; j < n; j++) {
                const float *bj = b + j * ldb;
                float s = 0.0f;
                if (!trans_a) {
                    const float *ai = a + i * lda;
                    for (size_t p = 0; p < k; p++) s += ai[p] * bj[p];
                } else {
                    for (size_t p = 0; p < k; p++) s += a[p * lda + i] * bj[p];
                }
                ci[j] += alpha * s;
            }
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

void bp__gemm(int trans_a, int trans_b, size_t m, size_t n, size_t k, float alpha,
              const float *a, size_t lda, const float *b, size_t ldb, float beta, float *c,
              size_t ldc)
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

static pthread_once_t default_threads_once = PTHREAD_ONCE_INIT;
static int default_threads = 1; /* written once, under pthread_once */

static void read_default_threads(void)
{
    const int t = openblas_get_num_threads();
    default_threads = t > 0 ? t : 1;
}

bp_status bp_set_num_threads(int threads)
{
    if (threads < 0 || threads > 1024)
        return bp__fail(NULL, BP_ERR_OUT_OF_RANGE,
                        "bp_set_num_threads: %d threads is outside 0..1024", threads);
    pthread_once(&default_threads_once, read_default_threads);
    openblas_set_num_threads(threads == 0 ? default_threads : threads);
    return BP_OK;
}

int bp_get_num_threads(void)
{
    const int t = openblas_get_num_threads();
    return t > 0 ? t : 1;
}

/* ------------------------------------------------------------------------------------------
 * Backend report
 * ----------------------------------------------------------------------------------------*/

static pthread_once_t backend_once = PTHREAD_ONCE_INIT;
static char backend_text[512]; /* written once, under pthread_once; read-only after */

/* Cores OpenBLAS may pick that use no AVX instructions (its pre-Sandybridge x86 kernels). */
static int core_is_pre_avx(const char *core)
{
    static const char *const old[] = {"Prescott", "Core2",   "Penryn",  "Dunnington",
                                      "Nehalem",  "Atom",    "Katmai",  "Coppermine",
                                      "Northwood", "Banias", "Opteron", "Opteron_SSE3",
                                      "Barcelona", "Bobcat", "Nano",    "generic",
                                      "Unknown"};
    for (size_t i = 0; i < sizeof old / sizeof old[0]; i++)
        if (strcmp(core, old[i]) == 0) return 1;
    return 0;
}

static void build_backend_text(void)
{
    const char *core = openblas_get_corename();
    const char *config = openblas_get_config();
    int avx2 = 0, avx512 = 0;
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
    __builtin_cpu_init();
    avx2 = __builtin_cpu_supports("avx2");
    avx512 = __builtin_cpu_supports("avx512f");
#endif
    if (core == NULL) core = "unknown";
    if (config == NULL) config = "OpenBLAS";
    int len = snprintf(backend_text, sizeof backend_text, "%s; core=%s; cpu=%s", config, core,
                       avx512 ? "avx512" : avx2 ? "avx2" : "pre-avx2");
    if (len > 0 && (size_t)len < sizeof backend_text && (avx2 || avx512) &&
        core_is_pre_avx(core)) {
        snprintf(backend_text + len, sizeof backend_text - (size_t)len,
                 "; hint: OpenBLAS did not recognise this CPU and runs pre-AVX kernels: "
                 "set OPENBLAS_CORETYPE=%s for ~4x faster GEMM",
                 avx512 ? "SkylakeX (or Haswell)" : "Haswell");
    }
}

const char *bp_backend_info(void)
{
    pthread_once(&backend_once, build_backend_text);
    return backend_text;
}
