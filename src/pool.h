/*
 * pool.h -- worker threads for elementwise passes (pool.c).
 */
#ifndef BP_POOL_H
#define BP_POOL_H

#include "util.h"

/* ---- worker threads (pool.c) ---- */
/* A pass over [begin, end) of an elementwise job. */
typedef void (*bp__range_fn)(void *ctx, size_t begin, size_t end);
typedef struct bp__pool bp__pool;
/* Passes shorter than this many floats run on the caller's thread alone (waking a worker
 * costs a few microseconds); longer ones give each thread at least half of it. */
#define BP__POOL_MIN_FLOATS 65536
/* Run @p fn over [0, @p n) split into contiguous chunks across up to bp_get_num_threads()
 * threads: the caller's and the workers of *@p pool, created on first need. Returns when
 * every chunk is done. Never fails (falls back to the caller's thread alone). */
void bp__pool_run(bp__pool **pool, const bp__alloc *a, size_t n, bp__range_fn fn, void *ctx);
/* Workers started so far (0 for NULL). */
int bp__pool_workers(const bp__pool *pool);
/* Tests: how many times a worker has joined a pass so far. */
unsigned long bp__pool_joins(bp__pool *pool);
/* Tests: 1 if every worker's affinity excludes the CPU the caller ran on at the last pass
 * (stored in *cpu), 0 if one allows it, -1 if not applicable (no workers, no affinity
 * support, or a caller mask of one CPU). */
int bp__pool_kept_off(const bp__pool *pool, int *cpu);
/* Join the workers and free @p pool (allocated from @p a; NULL is a no-op). */
void bp__pool_free(bp__pool *pool, const bp__alloc *a);

#endif /* BP_POOL_H */
