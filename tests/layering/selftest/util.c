#include "selftest.h"

int st_util(int x)
{
    return x + 1;
}
