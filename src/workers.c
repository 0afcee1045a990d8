/* workers.c -- the thread budget (bp_set_num_threads, shared with BLAS through gemm.c) and
 * the library's own worker threads, for the elementwise passes that run between
 * BLAS calls (optimizer updates, activation layers) and the batch-parallel ones split by
 * whole items (bp__workers_run_items: im2col/col2im per sample, batch norm per channel,
 * pooling per plane, in training).
 *
 * Why: with 2 BLAS threads the GEMMs of a training step use both cores, but a pass such as
 * the Adam update (a square root and a division per parameter, plus 4 floats read and 3
 * written) ran on one core while BLAS's threads waited. Splitting it across the caller's thread
 * budget (bp_set_num_threads) uses the idle core without oversubscribing: our workers run only
 * while BLAS's threads have nothing to do (the two never overlap in a step), and the caller's
 * thread does a share.
 *
 * How: a pool belongs to one network, is created on first use by a pass large enough to
 * gain (BP__WORKERS_MIN_FLOATS), and is joined by bp_net_free. Workers block on a condition
 * variable between passes (no spinning, DESIGN.md §4), block every signal, and run with the
 * caller's FTZ/DAZ bits so that each chunk computes the same floats the caller would. The
 * passes are elementwise, or compute each item alone, so any split gives bit-identical
 * results.
 *
 * A pass is cut into chunks that the caller and the woken workers claim from an atomic
 * counter, and the caller never waits for a worker to wake: on a loaded machine, where a
 * worker may not get a core for milliseconds, the caller simply claims every chunk itself
 * and the pass costs what it costs on one thread, plus one wake-up call. It waits only for
 * chunks a worker has claimed and not finished: polling for a bounded time (a sleep and
 * wake-up there cost as much as the split saved), then blocking. Workers are kept off the
 * caller's CPU (keep_off_callers_cpu) and join a pass only within its thread budget.
 *
 * Failure is never an error: if the pool cannot be allocated or a thread cannot start, the
 * pass runs on the caller's thread. In a child process after fork() the workers do not
 * exist: the pool is not used there, and freeing it does not join. */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE /* sched_getcpu, pthread_setaffinity_np */
#endif
#include "util.h"
#include "workers.h"
#include "gemm.h"

#include <pthread.h>

#if defined(__unix__) || defined(__APPLE__)
#define BP__WORKERS_THREADS 1
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <unistd.h>
#if defined(__linux__)
#include <sched.h>
#endif
#else
#define BP__WORKERS_THREADS 0
#endif

/* Workers per pool, at most (the caller's thread is one more). */
#define BP__WORKERS_MAX_WORKERS 15

/* Chunks are multiples of 16 floats (one 64-byte cache line, so no two threads write the
 * same line), at least BP__WORKERS_CHUNK_MIN floats, and about 8 per thread so that a late
 * worker still finds some. */
#define BP__WORKERS_ALIGN     16
#define BP__WORKERS_CHUNK_MIN 8192

/* How long the caller polls for the workers' last chunks before it blocks: PAUSE takes
 * ~65 cycles on Zen and ~140 on recent Intel cores, so 2048 of them are 30-70 us. */
#define BP__WORKERS_SPIN 2048
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
static inline void bp__cpu_relax(void)
{
    _mm_pause();
}
#else
static inline void bp__cpu_relax(void) {}
#endif

static void run_serial(size_t n, bp__range_fn fn, void *ctx)
{
    if (n > 0) fn(ctx, 0, n);
}

#if BP__WORKERS_THREADS

typedef struct worker_arg {
    struct bp__workers *pool;
    int index;           /* 1.. (the caller is 0) */
    unsigned long start; /* the pass counter when it started: later passes are its work */
} worker_arg;

struct bp__workers {
    pid_t pid; /* the process whose threads these are */
    pthread_mutex_t mu;
    pthread_cond_t go;   /* a pass started (or quit) */
    pthread_cond_t idle; /* the last chunk finished, or a worker left a pass */
    pthread_t th[BP__WORKERS_MAX_WORKERS];
    worker_arg arg[BP__WORKERS_MAX_WORKERS];
    int nworkers; /* started */
    int quit;
    unsigned long gen;   /* bumped per pass */
    int active;          /* workers holding the current pass's descriptor */
    int parts;           /* threads the current pass may use: workers 1..parts-1 join it */
    unsigned long joins; /* worker joins of passes, for the tests */
    /* The current pass, written under mu while active == 0. */
    bp__range_fn fn;
    void *ctx;
    size_t n, chunk, nchunks;
    unsigned csr;       /* the caller's MXCSR (its FTZ/DAZ bits are adopted) */
    int away_from;      /* the caller's CPU at the last check, or -1 */
    int steered;        /* 1 if the workers' masks exclude away_from */
    atomic_size_t next; /* next chunk to claim */
    atomic_size_t done; /* chunks finished */
};

/* Claim and run chunks of the current pass until none is left. Returns 1 if this thread
 * finished the pass's last chunk. */
static int claim_chunks(bp__workers *pool, bp__range_fn fn, void *ctx, size_t n, size_t chunk,
                        size_t nchunks)
{
    int last = 0;
    for (;;) {
        const size_t c = atomic_fetch_add(&pool->next, 1);
        if (c >= nchunks) break;
        const size_t b = c * chunk;
        const size_t e = c + 1 == nchunks ? n : b + chunk;
        fn(ctx, b, e);
        last = atomic_fetch_add(&pool->done, 1) + 1 == nchunks;
    }
    return last;
}

static void *worker_main(void *p)
{
    const worker_arg arg = *(const worker_arg *)p;
    bp__workers *pool = arg.pool;
    unsigned long seen = arg.start;
    pthread_mutex_lock(&pool->mu);
    for (;;) {
        while (!pool->quit && pool->gen == seen)
            pthread_cond_wait(&pool->go, &pool->mu);
        if (pool->quit) break;
        seen = pool->gen;
        if (arg.index >= pool->parts) continue; /* the budget shrank since it started */
        pool->active++;
        pool->joins++;
        const bp__range_fn fn = pool->fn;
        void *ctx = pool->ctx;
        const size_t n = pool->n, chunk = pool->chunk, nchunks = pool->nchunks;
        const unsigned want = pool->csr;
        pthread_mutex_unlock(&pool->mu);

        const unsigned mine = bp__fp_adopt(want);
        const int last = claim_chunks(pool, fn, ctx, n, chunk, nchunks);
        bp__fp_adopt(mine);

        pthread_mutex_lock(&pool->mu);
        pool->active--;
        if (last || pool->active == 0) pthread_cond_broadcast(&pool->idle);
    }
    pthread_mutex_unlock(&pool->mu);
    return NULL;
}

/* Start workers until there are @p want (or a start fails). Called with no pass running. */
static void workers_grow(bp__workers *pool, int want)
{
    if (want > BP__WORKERS_MAX_WORKERS) want = BP__WORKERS_MAX_WORKERS;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old); /* workers inherit: no signal runs on them */
    while (pool->nworkers < want) {
        worker_arg *a = &pool->arg[pool->nworkers];
        a->pool = pool;
        a->index = pool->nworkers + 1;
        a->start = pool->gen;
        if (pthread_create(&pool->th[pool->nworkers], NULL, worker_main, a) != 0) break;
        pool->nworkers++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

/* Keep the workers off the CPU the caller runs on (within the caller's own affinity mask,
 * so a user's taskset or cpuset is honoured). Without this the scheduler often woke the
 * worker on the caller's CPU, the other one being busy with OpenBLAS's idle-spinning server
 * thread, and the two halves of a pass ran one after the other: Fashion-MNIST epochs at 2
 * threads were bimodal, 0.475 or 0.53 s. Redone only when the caller has moved. */
static void keep_off_callers_cpu(bp__workers *pool)
{
#if defined(__linux__) && defined(CPU_ZERO)
    const int cpu = sched_getcpu();
    if (cpu < 0 || cpu == pool->away_from) return;
    pool->away_from = cpu;
    pool->steered = 0;
    cpu_set_t set;
    if (pthread_getaffinity_np(pthread_self(), sizeof set, &set) != 0) return;
    if (!CPU_ISSET(cpu, &set) || CPU_COUNT(&set) < 2) return;
    CPU_CLR(cpu, &set);
    int ok = 1;
    for (int i = 0; i < pool->nworkers; i++)
        ok &= pthread_setaffinity_np(pool->th[i], sizeof set, &set) == 0;
    pool->steered = ok;
#else
    (void)pool;
#endif
}

static bp__workers *workers_create(const bp__alloc *a)
{
    bp__workers *pool = bp__calloc(a, 1, sizeof *pool);
    if (pool == NULL) return NULL;
    if (pthread_mutex_init(&pool->mu, NULL) != 0) goto fail_mu;
    if (pthread_cond_init(&pool->go, NULL) != 0) goto fail_go;
    if (pthread_cond_init(&pool->idle, NULL) != 0) goto fail_idle;
    atomic_init(&pool->next, 0);
    atomic_init(&pool->done, 0);
    pool->pid = getpid();
    pool->away_from = -1;
    return pool;
fail_idle:
    pthread_cond_destroy(&pool->go);
fail_go:
    pthread_mutex_destroy(&pool->mu);
fail_mu:
    bp__free(a, pool);
    return NULL;
}

/* Run @p fn over [0, n) in chunks of @p unit-aligned sizes across the thread budget; the
 * pass covers @p floats floats of memory (n floats, or n items of a pass by items) and each
 * chunk at least @p min_chunk of the n. */
static void run_pass(bp__workers **slot, const bp__alloc *a, size_t n, size_t floats,
                     size_t min_chunk, size_t unit, bp__range_fn fn, void *ctx)
{
    int threads = bp_get_num_threads();
    if (threads > BP__WORKERS_MAX_WORKERS + 1) threads = BP__WORKERS_MAX_WORKERS + 1;
    /* Each thread gets at least BP__WORKERS_MIN_FLOATS / 2 floats. */
    const size_t useful = floats / (BP__WORKERS_MIN_FLOATS / 2);
    if ((size_t)threads > useful) threads = (int)useful;
    if ((size_t)threads > n) threads = (int)n;
    if (threads < 2) {
        run_serial(n, fn, ctx);
        return;
    }
    bp__workers *pool = *slot;
    if (pool != NULL && pool->pid != getpid()) {
        run_serial(n, fn, ctx); /* a forked child: the workers stayed in the parent */
        return;
    }
    if (pool == NULL) {
        pool = *slot = workers_create(a);
        if (pool == NULL) {
            run_serial(n, fn, ctx);
            return;
        }
    }
    if (pool->nworkers < threads - 1) {
        workers_grow(pool, threads - 1);
        pool->away_from = -1; /* the new workers have the default mask */
    }
    keep_off_callers_cpu(pool);
    const int parts = pool->nworkers + 1 < threads ? pool->nworkers + 1 : threads;
    if (parts < 2) {
        run_serial(n, fn, ctx);
        return;
    }
    size_t chunk = n / (8 * (size_t)parts);
    if (chunk < min_chunk) chunk = min_chunk;
    chunk += (unit - chunk % unit) % unit;
    const size_t nchunks = (n + chunk - 1) / chunk;

    pthread_mutex_lock(&pool->mu);
    /* A worker that woke late for the previous pass may still hold its descriptor. */
    while (pool->active > 0)
        pthread_cond_wait(&pool->idle, &pool->mu);
    pool->fn = fn;
    pool->ctx = ctx;
    pool->n = n;
    pool->chunk = chunk;
    pool->nchunks = nchunks;
    pool->parts = parts;
    pool->csr = bp__fp_get();
    atomic_store(&pool->next, 0);
    atomic_store(&pool->done, 0);
    pool->gen++;
    pthread_cond_broadcast(&pool->go);
    pthread_mutex_unlock(&pool->mu);

    if (claim_chunks(pool, fn, ctx, n, chunk, nchunks)) return; /* finished the last one */
    /* Only chunks a running worker claimed are left, each a few microseconds: wait for
     * them on this core, which has nothing else to do, rather than sleep and pay a
     * wake-up (5-30 us on the reference VM); block only if that takes unusually long (the
     * worker was preempted). */
    for (unsigned spin = 0; spin < BP__WORKERS_SPIN; spin++) {
        if (atomic_load(&pool->done) == nchunks) return;
        bp__cpu_relax();
    }
    pthread_mutex_lock(&pool->mu);
    while (atomic_load(&pool->done) < nchunks)
        pthread_cond_wait(&pool->idle, &pool->mu);
    pthread_mutex_unlock(&pool->mu);
}

void bp__workers_run(bp__workers **slot, const bp__alloc *a, size_t n, bp__range_fn fn, void *ctx)
{
    run_pass(slot, a, n, n, BP__WORKERS_CHUNK_MIN, BP__WORKERS_ALIGN, fn, ctx);
}

void bp__workers_run_items(bp__workers **slot, const bp__alloc *a, size_t items, size_t floats,
                           bp__range_fn fn, void *ctx)
{
    if (items == 0) return;
    const size_t each = floats / items > 0 ? floats / items : 1;
    run_pass(slot, a, items, floats, (BP__WORKERS_CHUNK_MIN + each - 1) / each, 1, fn, ctx);
}

int bp__workers_count(const bp__workers *pool)
{
    return pool != NULL ? pool->nworkers : 0;
}

unsigned long bp__workers_joins(bp__workers *pool)
{
    if (pool == NULL) return 0;
    pthread_mutex_lock(&pool->mu);
    const unsigned long j = pool->joins;
    pthread_mutex_unlock(&pool->mu);
    return j;
}

int bp__workers_kept_off(const bp__workers *pool, int *cpu)
{
    *cpu = -1;
#if defined(__linux__) && defined(CPU_ZERO)
    if (pool == NULL || pool->nworkers == 0 || !pool->steered) return -1;
    *cpu = pool->away_from;
    for (int i = 0; i < pool->nworkers; i++) {
        cpu_set_t set;
        if (pthread_getaffinity_np(pool->th[i], sizeof set, &set) != 0) return -1;
        if (CPU_ISSET(pool->away_from, &set)) return 0;
    }
    return 1;
#else
    (void)pool;
    return -1;
#endif
}

void bp__workers_free(bp__workers *pool, const bp__alloc *a)
{
    if (pool == NULL) return;
    if (pool->pid == getpid()) {
        pthread_mutex_lock(&pool->mu);
        pool->quit = 1;
        pthread_cond_broadcast(&pool->go);
        pthread_mutex_unlock(&pool->mu);
        for (int i = 0; i < pool->nworkers; i++)
            pthread_join(pool->th[i], NULL);
        pthread_cond_destroy(&pool->idle);
        pthread_cond_destroy(&pool->go);
        pthread_mutex_destroy(&pool->mu);
    }
    /* In a forked child the workers never existed here: their memory is all there is. */
    bp__free(a, pool);
}

#else /* no threads on this platform: every pass runs on the caller's thread */

void bp__workers_run(bp__workers **slot, const bp__alloc *a, size_t n, bp__range_fn fn, void *ctx)
{
    (void)slot, (void)a;
    run_serial(n, fn, ctx);
}

void bp__workers_run_items(bp__workers **slot, const bp__alloc *a, size_t items, size_t floats,
                           bp__range_fn fn, void *ctx)
{
    (void)slot, (void)a, (void)floats;
    run_serial(items, fn, ctx);
}

int bp__workers_count(const bp__workers *pool)
{
    (void)pool;
    return 0;
}

unsigned long bp__workers_joins(bp__workers *pool)
{
    (void)pool;
    return 0;
}

int bp__workers_kept_off(const bp__workers *pool, int *cpu)
{
    (void)pool;
    *cpu = -1;
    return -1;
}

void bp__workers_free(bp__workers *pool, const bp__alloc *a)
{
    (void)pool, (void)a;
}

#endif

/* ------------------------------------------------------------------------------------------
 * The thread budget: one number for BLAS's threads and ours (BLAS keeps it).
 * ----------------------------------------------------------------------------------------*/

static pthread_once_t default_threads_once = PTHREAD_ONCE_INIT;
static int default_threads = 1; /* written once, under pthread_once */

static void read_default_threads(void)
{
    default_threads = bp__gemm_get_threads();
}

bp_status bp_set_num_threads(int threads)
{
    if (threads < 0 || threads > 1024)
        return bp__fail(NULL, BP_ERR_OUT_OF_RANGE,
                        "bp_set_num_threads: %d threads is outside 0..1024", threads);
    pthread_once(&default_threads_once, read_default_threads);
    bp__gemm_set_threads(threads == 0 ? default_threads : threads);
    return BP_OK;
}

int bp_get_num_threads(void)
{
    return bp__gemm_get_threads();
}
