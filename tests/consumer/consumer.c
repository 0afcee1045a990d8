/* consumer.c -- a C99 program built against an installed libbackprop with pkg-config
 * (`cc $(pkg-config --cflags backprop) consumer.c $(pkg-config [--static] --libs backprop)`).
 * Exit status: 0 if every check passed. */
#include "consumer_checks.h"

int main(void)
{
    const int failures = consumer_run_checks();
    if (failures != 0) fprintf(stderr, "consumer.c: %d check(s) failed\n", failures);
    return failures == 0 ? 0 : 1;
}
