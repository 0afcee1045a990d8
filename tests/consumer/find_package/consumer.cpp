// consumer.cpp -- a C++17 program linking backprop::backprop from find_package(backprop).
// Checks that the header is C++-clean (extern "C", no C-only constructs) and that the
// library works; exit status 0 if every check passed.
#include <string>
#include <type_traits>

#include "consumer_checks.h"

static_assert(BP_OK == 0, "BP_OK is pinned to 0");
static_assert(BP_ERR_NOMEM == -500, "status values are pinned");
static_assert(std::is_same<decltype(&bp_status_string), const char *(*)(int)>::value,
              "bp_status_string takes an int and returns a static string");

int main()
{
    int failures = consumer_run_checks();
    const std::string version = bp_version_string();
    if (version != BP_VERSION_STRING) failures++;
    if (failures != 0) std::fprintf(stderr, "consumer.cpp: %d check(s) failed\n", failures);
    return failures == 0 ? 0 : 1;
}
