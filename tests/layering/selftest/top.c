#include "selftest.h"

int st_top(int x)
{
    return st_kern(x) - st_util(x);
} /* top (2) -> kern, util: down */
