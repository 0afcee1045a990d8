/* hello.c -- the smallest backprop program: prints the library version and the BLAS backend
 * it runs on (with a hint if OpenBLAS picked slow kernels for this CPU). Run by the `demo`
 * preset: cmake --workflow --preset demo */
#include <stdio.h>

#include <backprop.h>

int main(void)
{
    if (bp_version() != BP_VERSION_NUMBER) {
        fprintf(stderr, "hello: header %s but library %s\n", BP_VERSION_STRING,
                bp_version_string());
        return 1;
    }
    printf("backprop %s\n", bp_version_string());
    printf("BLAS backend: %s\n", bp_backend_info());
    printf("BLAS threads: %d\n", bp_get_num_threads());
    return 0;
}
