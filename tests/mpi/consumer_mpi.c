/* consumer_mpi.c -- a program built against the installed MPI component (pkg-config module
 * backprop-mpi or find_package(backprop COMPONENTS mpi)) and run with 2 ranks: two replicas
 * that start different are broadcast, trained for a few steps and compared. Exit status 0
 * if every check passed on this rank. */
#include <stdio.h>

#include <backprop_mpi.h>

int main(int argc, char **argv)
{
    if (MPI_Init(&argc, &argv) != MPI_SUCCESS) return 1;
    int rank = 0, size = 1, failures = 0, equal = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    const float x[8] = {0, 0, 0, 1, 1, 0, 1, 1}, y[4] = {0, 1, 1, 0};
    bp_net *net = NULL;
    bp_optimizer *opt = NULL;
    if (bp_net_create(&net, 2, 42u + (unsigned)rank) != BP_OK ||
        bp_net_add_dense(net, 8, BP_ACT_TANH) != BP_OK ||
        bp_net_add_dense(net, 1, BP_ACT_SIGMOID) != BP_OK ||
        bp_optimizer_create(&opt, BP_OPTIMIZER_SGD) != BP_OK)
        failures++;
    if (bp_mpi_broadcast_params(net, 0, MPI_COMM_WORLD) != BP_OK) failures++;
    size_t start = 0, count = 0;
    if (bp_mpi_shard(4, rank, size, &start, &count) != BP_OK) failures++;
    for (int i = 0; i < 20 && failures == 0; i++) {
        float loss;
        if (bp_mpi_train_step(net, opt, BP_LOSS_MSE, x + 2 * start, y + start, count, &loss,
                              MPI_COMM_WORLD) != BP_OK) {
            fprintf(stderr, "rank %d: %s\n", rank, bp_mpi_last_error());
            failures++;
        }
    }
    if (bp_mpi_replicas_equal(net, &equal, MPI_COMM_WORLD) != BP_OK || equal != 1) failures++;
    if (rank == 0) printf("consumer_mpi: %d ranks, replicas equal: %d\n", size, equal);
    bp_optimizer_free(opt);
    bp_net_free(net);
    MPI_Finalize();
    return failures == 0 ? 0 : 1;
}
