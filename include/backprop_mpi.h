/*
 * backprop_mpi.h -- synchronous data-parallel training of backprop networks over MPI.
 *
 * An optional component: libbackprop_mpi (CMake target backprop::mpi, pkg-config module
 * backprop-mpi), built when MPI is found. libbackprop itself never links MPI; this library
 * uses only its public API (backprop.h).
 *
 * Every rank holds a replica of the network. Each step, each rank computes the gradients of
 * its shard of the global batch, the gradients are averaged with one MPI_Allreduce over the
 * network's single gradient buffer (bp_net_grads()), and every rank applies the same
 * optimizer step, so the replicas stay bit-identical:
 *
 *     MPI_Init(&argc, &argv);
 *     int rank, size;
 *     MPI_Comm_rank(MPI_COMM_WORLD, &rank);
 *     MPI_Comm_size(MPI_COMM_WORLD, &size);
 *     bp_net *net; bp_optimizer *opt;
 *     bp_net_create(&net, 784, 42);                     // same architecture on every rank
 *     bp_net_add_dense(net, 128, BP_ACT_RELU);
 *     bp_net_add_dense(net, 10, BP_ACT_SOFTMAX);
 *     bp_optimizer_create(&opt, BP_OPTIMIZER_SGD);
 *     bp_mpi_broadcast_params(net, 0, MPI_COMM_WORLD);  // replicas start identical
 *     size_t start, count;                              // this rank's rows of a batch of 64
 *     bp_mpi_shard(64, rank, size, &start, &count);
 *     float loss;
 *     if (bp_mpi_train_step(net, opt, BP_LOSS_SOFTMAX_CE, x + start * 784, y + start * 10,
 *                           count, &loss, MPI_COMM_WORLD) != BP_OK)
 *         fprintf(stderr, "%s\n", bp_mpi_last_error());  // same status on every rank
 *
 * Conventions: those of backprop.h, plus these for every collective function (the ones that
 * take an MPI_Comm):
 *  - Every rank of @p comm must make the same sequence of collective calls with the same
 *    scalar arguments (loss, root), the same network architecture and the same optimizer
 *    settings.
 *  - Agreement before communication: each collective call first combines the local status
 *    of every rank (one small MPI_Allreduce, MINLOC), so a failure on one rank (a NaN in its
 *    shard, a NULL handle, a network of another size) makes the call return the same error
 *    on every rank instead of leaving the others waiting. The message of the lowest failing
 *    rank is sent to all and read with bp_mpi_last_error(): "rank 1: bp_mpi_train_step:
 *    bp_net_compute_grads: input row 3, column 0 is nan". Parameters are then unchanged.
 *  - A failure of MPI itself (only visible when the communicator's error handler is not
 *    the default MPI_ERRORS_ARE_FATAL) is reported as BP_ERR_IO, with MPI's error string.
 *  - MPI must be initialised and not finalised (else BP_ERR_STATE, decided locally: the
 *    same on every rank of a correct program). MPI_COMM_NULL gives BP_ERR_INVALID_ARG
 *    locally, without communicating.
 *  - The replicas stay identical because MPI_Allreduce delivers the same bits to every rank
 *    (true of Open MPI and MPICH); bp_mpi_replicas_equal() verifies it.
 *  - Thread use: the calling thread needs at least MPI_THREAD_FUNNELED semantics; one
 *    thread at a time per communicator.
 */
#ifndef BACKPROP_MPI_H
#define BACKPROP_MPI_H

#include <stddef.h>
#include <stdint.h>

#include <mpi.h>

#include "backprop.h"

#ifdef __cplusplus
extern "C" {
#endif

/** @def BP_MPI_API
 * Marks the exported functions of libbackprop_mpi (as BP_API does for libbackprop). Define
 * BP_STATIC when linking the static libraries on Windows. */
#ifndef BP_MPI_API
#if defined(_WIN32) || defined(__CYGWIN__)
#if defined(BP_MPI_BUILDING_SHARED)
#define BP_MPI_API __declspec(dllexport)
#elif defined(BP_STATIC)
#define BP_MPI_API
#else
#define BP_MPI_API __declspec(dllimport)
#endif
#elif defined(__GNUC__) && __GNUC__ >= 4
#define BP_MPI_API __attribute__((visibility("default")))
#else
#define BP_MPI_API
#endif
#endif

/* ============================================================================================
 * Errors
 * ==========================================================================================*/

/** @return the detailed message of the last failed bp_mpi_ call made by the calling thread
 *  ("" if none). After a failed collective call it is the same text on every rank (the
 *  lowest failing rank's message). Thread-local: valid until the calling thread's next
 *  failing bp_mpi_ call. The core library's bp_last_error() and bp_net_last_error() keep
 *  only local failures. @since 0.1 */
BP_MPI_API const char *bp_mpi_last_error(void);

/* ============================================================================================
 * Sharding and replicas (local)
 * ==========================================================================================*/

/** Split @p n rows into @p size contiguous shards of near-equal size and give the shard of
 *  @p rank: the first n % size ranks get n / size + 1 rows, the others n / size, in rank
 *  order. Deterministic, the same on every rank; a shard may be empty when n < size.
 *  Thread-safe, not collective.
 *  @param n      rows to split (0 gives every rank an empty shard).
 *  @param rank   0 .. size - 1.
 *  @param size   number of shards, >= 1.
 *  @param start  receives the shard's first row.
 *  @param count  receives the shard's row count.
 *  @return BP_OK, BP_ERR_INVALID_ARG (NULL output, size < 1, rank outside [0, size)).
 *  @since 0.1 */
BP_MPI_API bp_status bp_mpi_shard(size_t n, int rank, int size, size_t *start, size_t *count);

/** Fingerprint the parameters of @p net: FNV-1a (64-bit) over the IEEE-754 bit patterns of
 *  bp_net_params() in order, each float taken as 4 little-endian bytes, so equal checksums
 *  mean (with overwhelming probability) bit-identical weights on any platform. Not
 *  collective.
 *  @param net       the network; unchanged.
 *  @param checksum  receives the fingerprint.
 *  @return BP_OK, BP_ERR_INVALID_ARG (invalid handle, NULL @p checksum), BP_ERR_STATE (no
 *  layers). @since 0.1 */
BP_MPI_API bp_status bp_mpi_weights_checksum(bp_net *net, uint64_t *checksum);

/* ============================================================================================
 * Collective operations
 * ==========================================================================================*/

/** Copy the parameters of @p root's network to every rank's network (MPI_Bcast of the
 *  single parameter buffer), so that the replicas start identical. Call it once after
 *  building the networks (and before the first step: optimizer states are not sent).
 *  Collective.
 *  @param net   this rank's replica; its parameters are overwritten on every rank but root.
 *  @param root  the rank whose parameters are copied, 0 .. size - 1, the same on every rank.
 *  @param comm  the communicator.
 *  @return BP_OK; BP_ERR_INVALID_ARG (invalid handle on some rank, @p root out of range,
 *  MPI_COMM_NULL); BP_ERR_STATE (a network without layers; MPI not initialised);
 *  BP_ERR_SHAPE (the ranks' networks differ in parameter count or their @p root differs);
 *  BP_ERR_UNSUPPORTED (more than INT_MAX parameters: MPI counts are int); BP_ERR_IO.
 *  @since 0.1 */
BP_MPI_API bp_status bp_mpi_broadcast_params(bp_net *net, int root, MPI_Comm comm);

/** Replace every rank's gradients (bp_net_grads()) with their mean over the ranks, in one
 *  MPI_Allreduce over the whole buffer: g = (1/size) sum_r g_r. For custom loops:
 *  bp_net_compute_grads() on equal-sized shards, this, then bp_optimizer_step(). Gradient
 *  clipping (BP_NET_CLIP_*) is not applied here (bp_mpi_train_step() applies it after the
 *  average). Collective.
 *  @param net   this rank's replica.
 *  @param comm  the communicator.
 *  @return BP_OK; BP_ERR_INVALID_ARG; BP_ERR_STATE (no layers; MPI not initialised);
 *  BP_ERR_SHAPE (parameter counts differ); BP_ERR_NONFINITE (a rank's gradients hold
 *  NaN/Inf: every rank's gradients are then unchanged and the message names the rank and
 *  the element); BP_ERR_UNSUPPORTED; BP_ERR_IO. @since 0.1 */
BP_MPI_API bp_status bp_mpi_allreduce_grads(bp_net *net, MPI_Comm comm);

/** One synchronous data-parallel training step on a global batch of N = sum of n_local
 *  rows, of which this rank holds n_local (bp_mpi_shard()). Equivalent, up to the order of
 *  float summation, to bp_net_train_step() on the whole batch in one process:
 *   1. bp_net_compute_grads() on the local rows (a rank with n_local = 0 contributes zero);
 *   2. agreement on the local statuses and parameter counts (MPI_Allreduce, MINLOC);
 *   3. the global row count and loss sum (MPI_Allreduce of 2 doubles);
 *   4. the local gradients, scaled by n_local / N, summed over the ranks in one
 *      MPI_Allreduce of the whole buffer (4 x bp_net_param_count() bytes): the mean
 *      gradient of the global batch, also when the shards differ in size;
 *   5. clipping (BP_NET_CLIP_NORM then BP_NET_CLIP_VALUE) of the averaged gradient, as
 *      bp_net_train_step() does;
 *   6. bp_optimizer_step() on every rank, then agreement on its status.
 *  The backward pass and the gradient allreduce are not overlapped.
 *  @param net         this rank's replica; BP_NET_ACCUMULATE_GRADS must be 0.
 *  @param opt         this rank's optimizer (same settings on every rank).
 *  @param loss        an enum bp_loss value, the same on every rank.
 *  @param x           this rank's inputs [n_local x in]; may be NULL when n_local is 0.
 *  @param y           this rank's targets [n_local x out] (or [n_local] class indices).
 *  @param n_local     this rank's rows, 0 allowed; N must be >= 1.
 *  @param loss_value  if not NULL, receives the loss of the whole global batch (the mean
 *                     weighted by the shard sizes), the same on every rank.
 *  @param comm        the communicator.
 *  @return BP_OK; any error of bp_net_compute_grads() or bp_optimizer_step() on any rank
 *  (every rank's parameters are then untouched, except after an optimizer failure on only
 *  some ranks, e.g. BP_ERR_NOMEM: the replicas then differ, re-broadcast them);
 *  BP_ERR_INVALID_ARG (also N = 0); BP_ERR_STATE (accumulating gradients, MPI not
 *  initialised); BP_ERR_SHAPE; BP_ERR_UNSUPPORTED; BP_ERR_IO. Allocates nothing after
 *  the core's first step at a given n_local. @since 0.1 */
BP_MPI_API bp_status bp_mpi_train_step(bp_net *net, bp_optimizer *opt, int loss, const float *x,
                                       const float *y, size_t n_local, float *loss_value,
                                       MPI_Comm comm);

/** Check that every rank's replica holds bit-identical parameters (compares
 *  bp_mpi_weights_checksum() across the ranks). Collective.
 *  @param net    this rank's replica; unchanged.
 *  @param equal  receives 1 if every rank has the same checksum, else 0; the same on every
 *                rank.
 *  @param comm   the communicator.
 *  @return BP_OK, BP_ERR_INVALID_ARG, BP_ERR_STATE, BP_ERR_IO. @since 0.1 */
BP_MPI_API bp_status bp_mpi_replicas_equal(bp_net *net, int *equal, MPI_Comm comm);

/** Evaluate @p net on @p ds split across the ranks and combine the metrics into those of the
 *  whole set, the same on every rank: rank r evaluates its rows (bp_mpi_shard() of the set)
 *  with bp_net_evaluate(); the loss, accuracy and MAE are the means weighted by the rows of
 *  each part, the RMSE the root of the weighted mean of the squares. Equal to
 *  bp_net_evaluate() on the whole set in one process up to float summation order. Every rank
 *  passes the same data set (the same rows in the same order) and an identical replica.
 *  Collective.
 *  @param net      this rank's replica (its prediction workspace is used).
 *  @param loss     an enum bp_loss value, the same on every rank.
 *  @param ds       the data set, the same on every rank.
 *  @param metrics  receives min(@p count, 4) values: BP_METRIC_LOSS, BP_METRIC_ACCURACY,
 *                  BP_METRIC_MAE, BP_METRIC_RMSE (NaN where they do not apply).
 *  @param count    capacity of @p metrics, >= 1.
 *  @param comm     the communicator.
 *  @return BP_OK; any error of bp_net_evaluate() on any rank; BP_ERR_INVALID_ARG;
 *  BP_ERR_SHAPE (data sets or networks of different sizes); BP_ERR_NOMEM; BP_ERR_STATE;
 *  BP_ERR_IO. @since 0.1 */
BP_MPI_API bp_status bp_mpi_evaluate(bp_net *net, int loss, const bp_dataset *ds, double *metrics,
                                     size_t count, MPI_Comm comm);

/** Distributed bp_net_fit(): synchronous data-parallel training over @p comm with every
 *  setting, schedule, validation, early stop, history entry and callback of bp_net_fit().
 *  Collective; call it on every rank with the same arguments:
 *   - @p train and @p val are the same full data sets on every rank (the same rows in the
 *     same order). Rank r trains on its interleaved shard, rows r, r + p, r + 2p, ... of
 *     @p train (p = the number of ranks), floor(n / p) of them: the last n % p rows of
 *     @p train are not used, so that every rank runs the same number of batches.
 *   - A memory-mapped @p train (bp_dataset_open_mapped(), every rank mapping the same file;
 *     since 0.2) is sharded contiguously instead: rank r trains on rows [r m, (r + 1) m),
 *     m = floor(n / p), a view of the file (bp_dataset_subset()), so each rank reads only
 *     the file blocks of its own rows and nothing is copied. Global batch k is then the
 *     union of the ranks' local batches k, rows [r m + k B / p, r m + (k + 1) B / p) of
 *     each rank r.
 *   - The global batch is the net's BP_FIT_BATCH_SIZE, B, which must be a multiple of p:
 *     each rank runs bp_net_fit() on its shard with batches of B / p rows (the setting is
 *     put back on return). With BP_FIT_SHUFFLE = 0, global batch k is then exactly rows
 *     [kB, (k + 1)B) of the truncated set, and p ranks give the weights of bp_net_fit() in
 *     one process on those floor(n / p) * p rows up to float summation order. With
 *     shuffling, each rank visits its shard in the order drawn from its net's generator,
 *     which is the same on every rank.
 *   - Each step a gradient hook (bp_net_set_grad_hook(); it replaces any hook of @p net and
 *     is removed on return) agrees on the ranks' statuses, replaces each rank's gradients
 *     by their mean over the ranks (one MPI_Allreduce of the whole buffer) and the batch
 *     loss by the global batch's; then bp_net_train_step() clips and updates as usual.
 *   - Replicas: rank 0's weights are broadcast first; everything else the training depends
 *     on must already be identical, and is checked (a checksum of each rank's
 *     bp_checkpoint_save_buffer() against rank 0's): the generator state (create every
 *     replica with the same seed and layers), the net's and fit settings, the optimizer's
 *     settings and state, the training counters and the metadata. So the replicas stay
 *     bit-identical, as do their validation metrics (each rank evaluates all of @p val)
 *     and training losses: early stopping, the plateau schedule and BP_FIT_RESTORE_BEST
 *     decide alike on every rank.
 *   - History: the loss (and so the monitored loss without @p val) and the val_* metrics
 *     are global and the same on every rank; the training accuracy, MAE and RMSE are
 *     measured on this rank's shard only.
 *   - The epoch callback (bp_net_set_epoch_callback()) runs on every rank; it must ask to
 *     stop on every rank alike (else BP_ERR_STATE, without a hang).
 *   - Every rank needs the same thread count (bp_set_num_threads()): the validation
 *     metrics must be bit-identical for the ranks to take the same decisions.
 *  A failure on any rank, before or during training (a non-finite loss on one shard, a
 *  failed update, a rank leaving bp_net_fit() early), makes every rank return the same
 *  status with the lowest failing rank's message, the others' bp_net_fit() stopping at
 *  their next step: no rank is left waiting.
 *  @param net    this rank's replica; trained.
 *  @param opt    this rank's optimizer.
 *  @param loss   an enum bp_loss value, the same on every rank.
 *  @param train  the full training set, the same on every rank; at least p rows.
 *  @param val    the full validation set, the same on every rank, or NULL on every rank.
 *  @param comm   the communicator.
 *  @return BP_OK on every rank, or the same error on every rank: any error of bp_net_fit()
 *  on any rank; BP_ERR_INVALID_ARG (invalid handle, BP_FIT_BATCH_SIZE not a multiple of
 *  the ranks, fewer training rows than ranks, MPI_COMM_NULL); BP_ERR_SHAPE (the ranks'
 *  parameter counts, set sizes or batch sizes differ); BP_ERR_STATE (replicas that differ
 *  beyond their weights, in which case every rank's weights are put back; ranks that stop
 *  at different epochs; MPI not initialised); BP_ERR_NOMEM (the shard copy, 1/p of an
 *  in-memory training set); BP_ERR_UNSUPPORTED (more than INT_MAX rows or parameters);
 *  BP_ERR_IO; for a mapped set its read errors (BP_ERR_CHECKSUM naming the block).
 *  @since 0.1 */
BP_MPI_API bp_status bp_mpi_fit(bp_net *net, bp_optimizer *opt, int loss, const bp_dataset *train,
                                const bp_dataset *val, MPI_Comm comm);

/* ============================================================================================
 * Files: only one rank writes
 * ==========================================================================================*/

/** Save the model on rank 0 only (bp_net_save()), and give every rank its outcome: with
 *  identical replicas one file is enough, and ranks writing the same path at once would
 *  race. Collective.
 *  @param net   this rank's replica; only rank 0's is read.
 *  @param path  the file; read on rank 0 only (may be NULL on the others).
 *  @param comm  the communicator.
 *  @return rank 0's bp_net_save() status on every rank (BP_OK, BP_ERR_INVALID_ARG,
 *  BP_ERR_STATE, BP_ERR_IO, BP_ERR_NOMEM; the message through bp_mpi_last_error()), or
 *  BP_ERR_INVALID_ARG / BP_ERR_STATE / BP_ERR_IO from MPI as for every collective call.
 *  @since 0.1 */
BP_MPI_API bp_status bp_mpi_save(const bp_net *net, const char *path, MPI_Comm comm);

/** Save a training checkpoint (bp_checkpoint_save()) on rank 0 only; as bp_mpi_save().
 *  Every rank's optimizer holds the same state after bp_mpi_train_step(), so rank 0's
 *  checkpoint resumes any number of ranks: load it on every rank (bp_checkpoint_load()).
 *  @param net   this rank's replica; only rank 0's is read.
 *  @param opt   this rank's optimizer; only rank 0's is read.
 *  @param path  the file; read on rank 0 only.
 *  @param comm  the communicator.
 *  @return rank 0's bp_checkpoint_save() status on every rank. @since 0.1 */
BP_MPI_API bp_status bp_mpi_checkpoint_save(const bp_net *net, const bp_optimizer *opt,
                                            const char *path, MPI_Comm comm);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* BACKPROP_MPI_H */
