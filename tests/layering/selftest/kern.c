#include "selftest.h"

int st_kern(int x)
{
    return st_util(x) * 2;
} /* kern (1) -> util (0): down */
