/* pool.c -- the library's own worker threads, for the memory-bound elementwise passes that
 * run between BLAS calls (optimizer updates).
 *
 * Why: with 2 BLAS threads the GEMMs of a training step use both cores, but a pass such as
 * the Adam update (4 floats read, 3 written per parameter) ran on one core while BLAS's
 * threads waited. Splitting it across the caller's thread budget (bp_set_num_threads) uses
 * the idle core without oversubscribing: our workers run only while BLAS's threads have
 * nothing to do (the two never overlap in a step), and the caller's thread does a share.
 *
 * How: a pool belongs to one network, is created on first use by a pass large enough to
 * gain (BP__POOL_MIN_FLOATS), and is joined by bp_net_free. Workers block on a condition
 * variable between passes (no spinning, DESIGN.md §4), block every signal, and run with the
 * caller's FTZ/DAZ bits so that each chunk computes the same floats the caller would. The
 * passes are elementwise, so any split gives bit-identical results.
 *
 * Failure is never an error: if the pool cannot be allocated or a thread cannot start, the
 * pass runs on the caller's thread. In a child process after fork() the workers do not
 * exist: the pool is not used there, and freeing it does not join. */
#include "internal.h"

#if defined(__unix__) || defined(__APPLE__)
#  define BP__POOL_THREADS 1
#  include <pthread.h>
#  include <signal.h>
#  include <unistd.h>
#else
#  define BP__POOL_THREADS 0
#endif


/* Workers per pool, at most (the caller's thread is one more). */
#define BP__POOL_MAX_WORKERS 15

/* Chunk boundaries fall on multiples of 16 floats (one 64-byte cache line) so that no two
 * threads write the same line. */
#define BP__POOL_ALIGN 16

static size_t chunk_begin(size_t n, size_t parts, size_t k)
{
    if (k >= parts) return n;
    const size_t b = (size_t)((double)n * (double)k / (double)parts);
    const size_t a = b - b % BP__POOL_ALIGN;
    return k == 0 ? 0 : a;
}

static void run_serial(size_t n, bp__range_fn fn, void *ctx)
{
    if (n > 0) fn(ctx, 0, n);
}

#if BP__POOL_THREADS

typedef struct worker_arg {
    struct bp__pool *pool;
    int index;             /* 1.. (0 is the caller) */
    unsigned long start;   /* the pass counter when it started: later passes are its work */
} worker_arg;

struct bp__pool {
    pid_t pid; /* the process whose threads these are */
    pthread_mutex_t mu;
    pthread_cond_t go, done;
    pthread_t th[BP__POOL_MAX_WORKERS];
    worker_arg arg[BP__POOL_MAX_WORKERS];
    int nworkers;     /* started */
    int quit;
    unsigned long gen; /* bumped per pass */
    int pending;      /* workers still running the current pass */
    int parts;        /* caller + workers taking part in the current pass */
    bp__range_fn fn;
    void *ctx;
    size_t n;
    unsigned csr; /* the caller's FTZ/DAZ bits */
};


static void *worker_main(void *p)
{
    const worker_arg arg = *(const worker_arg *)p;
    bp__pool *pool = arg.pool;
    unsigned long seen = arg.start;
    pthread_mutex_lock(&pool->mu);
    for (;;) {
        while (!pool->quit && pool->gen == seen) pthread_cond_wait(&pool->go, &pool->mu);
        if (pool->quit) break;
        seen = pool->gen;
        if (arg.index >= pool->parts) continue; /* not needed this pass */
        const bp__range_fn fn = pool->fn;
        void *ctx = pool->ctx;
        const size_t n = pool->n, parts = (size_t)pool->parts;
        const unsigned want = pool->csr;
        pthread_mutex_unlock(&pool->mu);

        const unsigned mine = bp__fp_adopt(want);
        const size_t b = chunk_begin(n, parts, (size_t)arg.index);
        const size_t e = chunk_begin(n, parts, (size_t)arg.index + 1);
        if (e > b) fn(ctx, b, e);
        bp__fp_adopt(mine);

        pthread_mutex_lock(&pool->mu);
        if (--pool->pending == 0) pthread_cond_signal(&pool->done);
    }
    pthread_mutex_unlock(&pool->mu);
    return NULL;
}

/* Start workers until there are @p want (or a start fails). Called with no pass running. */
static void pool_grow(bp__pool *pool, int want)
{
    if (want > BP__POOL_MAX_WORKERS) want = BP__POOL_MAX_WORKERS;
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

static bp__pool *pool_create(const bp__alloc *a)
{
    bp__pool *pool = bp__calloc(a, 1, sizeof *pool);
    if (pool == NULL) return NULL;
    if (pthread_mutex_init(&pool->mu, NULL) != 0) goto fail_mu;
    if (pthread_cond_init(&pool->go, NULL) != 0) goto fail_go;
    if (pthread_cond_init(&pool->done, NULL) != 0) goto fail_done;
    pool->pid = getpid();
    return pool;
fail_done:
    pthread_cond_destroy(&pool->go);
fail_go:
    pthread_mutex_destroy(&pool->mu);
fail_mu:
    bp__free(a, pool);
    return NULL;
}

void bp__pool_run(bp__pool **slot, const bp__alloc *a, size_t n, bp__range_fn fn, void *ctx)
{
    int threads = bp_get_num_threads();
    if (threads > BP__POOL_MAX_WORKERS + 1) threads = BP__POOL_MAX_WORKERS + 1;
    /* Each thread gets at least BP__POOL_MIN_FLOATS / 2 floats. */
    const size_t useful = n / (BP__POOL_MIN_FLOATS / 2);
    if ((size_t)threads > useful) threads = (int)useful;
    if (threads < 2) {
        run_serial(n, fn, ctx);
        return;
    }
    bp__pool *pool = *slot;
    if (pool != NULL && pool->pid != getpid()) {
        run_serial(n, fn, ctx); /* a forked child: the workers stayed in the parent */
        return;
    }
    if (pool == NULL) {
        pool = *slot = pool_create(a);
        if (pool == NULL) {
            run_serial(n, fn, ctx);
            return;
        }
    }
    if (pool->nworkers < threads - 1) pool_grow(pool, threads - 1);
    const int parts = pool->nworkers + 1 < threads ? pool->nworkers + 1 : threads;
    if (parts < 2) {
        run_serial(n, fn, ctx);
        return;
    }

    pthread_mutex_lock(&pool->mu);
    pool->fn = fn;
    pool->ctx = ctx;
    pool->n = n;
    pool->parts = parts;
    pool->pending = parts - 1;
    pool->csr = bp__fp_get();
    pool->gen++;
    pthread_cond_broadcast(&pool->go);
    pthread_mutex_unlock(&pool->mu);

    const size_t e = chunk_begin(n, (size_t)parts, 1);
    if (e > 0) fn(ctx, 0, e);

    pthread_mutex_lock(&pool->mu);
    while (pool->pending > 0) pthread_cond_wait(&pool->done, &pool->mu);
    pthread_mutex_unlock(&pool->mu);
}

int bp__pool_workers(const bp__pool *pool) { return pool != NULL ? pool->nworkers : 0; }

void bp__pool_free(bp__pool *pool, const bp__alloc *a)
{
    if (pool == NULL) return;
    if (pool->pid == getpid()) {
        pthread_mutex_lock(&pool->mu);
        pool->quit = 1;
        pthread_cond_broadcast(&pool->go);
        pthread_mutex_unlock(&pool->mu);
        for (int i = 0; i < pool->nworkers; i++) pthread_join(pool->th[i], NULL);
        pthread_cond_destroy(&pool->done);
        pthread_cond_destroy(&pool->go);
        pthread_mutex_destroy(&pool->mu);
    }
    /* In a forked child the workers never existed here: their memory is all there is. */
    bp__free(a, pool);
}

#else /* no threads on this platform: every pass runs on the caller's thread */

void bp__pool_run(bp__pool **slot, const bp__alloc *a, size_t n, bp__range_fn fn, void *ctx)
{
    (void)slot, (void)a;
    run_serial(n, fn, ctx);
}

int bp__pool_workers(const bp__pool *pool)
{
    (void)pool;
    return 0;
}

void bp__pool_free(bp__pool *pool, const bp__alloc *a) { (void)pool, (void)a; }

#endif
