#include "selftest.h"

int st_back(int x)
{
    return st_top(x) + 3;
} /* back (0) -> top (2): the upward edge */
