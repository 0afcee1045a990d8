#include "selftest.h"

int st_ring_b(int x)
{
    return x > 0 ? st_ring_a(x - 1) : st_kern(x);
}
