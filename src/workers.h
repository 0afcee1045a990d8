/*
 * workers.h -- the thread budget (bp_set_num_threads) and the worker threads for elementwise
 * passes (workers.c).
 */
#ifndef BP_WORKERS_H
#define BP_WORKERS_H

#include "util.h"

/* A pass over [begin, end) of an elementwise job. */
typedef void (*bp__range_fn)(void *ctx, size_t begin, size_t end);
typedef struct bp__workers bp__workers;
/* Passes shorter than this many floats run on the caller's thread alone (waking a worker
 * costs a few microseconds); longer ones give each thread at least half of it. */
#define BP__WORKERS_MIN_FLOATS 65536
/* Run @p fn over [0, @p n) split into contiguous chunks across up to bp_get_num_threads()
 * threads: the caller's and the workers of *@p pool, created on first need. Returns when
 * every chunk is done. Never fails (falls back to the caller's thread alone). */
void bp__workers_run(bp__workers **pool, const bp__alloc *a, size_t n, bp__range_fn fn, void *ctx);
/* The same for batch-parallel passes: @p fn runs over [0, @p items) (samples, channels,
 * planes, ...) split into runs of whole items; @p floats is the memory the whole pass reads
 * and writes, which decides how many threads it gets (as above) and the smallest run (about
 * BP__WORKERS_CHUNK_MIN floats' worth of items). The runs depend only on @p items, @p floats
 * and the thread budget, never on timing: a pass whose items are computed independently
 * gives the same floats on any number of threads. */
void bp__workers_run_items(bp__workers **pool, const bp__alloc *a, size_t items, size_t floats,
                           bp__range_fn fn, void *ctx);
/* Workers started so far (0 for NULL). */
int bp__workers_count(const bp__workers *pool);
/* Tests: how many times a worker has joined a pass so far. */
unsigned long bp__workers_joins(bp__workers *pool);
/* Tests: 1 if every worker's affinity excludes the CPU the caller ran on at the last pass
 * (stored in *cpu), 0 if one allows it, -1 if not applicable (no workers, no affinity
 * support, or a caller mask of one CPU). */
int bp__workers_kept_off(const bp__workers *pool, int *cpu);
/* Join the workers and free @p pool (allocated from @p a; NULL is a no-op). */
void bp__workers_free(bp__workers *pool, const bp__alloc *a);

#endif /* BP_WORKERS_H */
