/* selftest.h -- the seeded modules check_layering.py must accept or reject (see
 * CMakeLists.txt). Floors in floors_*.txt: util 0 < kern 1 < top 2; back (floor 0) uses top,
 * an upward edge; ring_a and ring_b (floor 1) use each other, a cycle on one floor. */
#ifndef LAYERING_SELFTEST_H
#define LAYERING_SELFTEST_H

int st_util(int x);
int st_kern(int x);
int st_top(int x);
int st_back(int x);
int st_ring_a(int x);
int st_ring_b(int x);

#endif
