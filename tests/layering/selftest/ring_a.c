#include "selftest.h"

/* ring_a -> ring_b and ring_b -> ring_a, both on floor 1: a cycle with no upward edge */
int st_ring_a(int x)
{
    return x > 0 ? st_ring_b(x - 1) : st_util(x);
}
