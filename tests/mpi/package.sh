#!/usr/bin/env bash
# package.sh -- packaging tests of the MPI component, driven by ctest (tests/mpi/CMakeLists.txt)
# after the package_install fixture has installed the build into PREFIX.
#
#   package.sh pkgconfig[-static] PREFIX LIBDIR WORK SRC CC -- MPIEXEC ARGS...
#   package.sh find-package       PREFIX WORK SRC CMAKE  -- MPIEXEC ARGS...
#
# Builds tests/mpi/consumer_mpi.c against the installed backprop-mpi and runs it with the
# launcher command after "--" (mpiexec -n 2 ...); find-package also checks that
# OPTIONAL_COMPONENTS mpi finds the component. Every step must succeed.
set -euo pipefail

die() { echo "package.sh: $*" >&2; exit 1; }
step() { echo "+ $*" >&2; "$@"; }

mode=${1:?mode}
shift
case "$mode" in
pkgconfig | pkgconfig-static)
    prefix=$1 libdir=$2 work=$3 src=$4 cc=$5
    shift 5
    [[ ${1:-} == -- ]] || die "missing -- before the launcher"
    shift
    for f in include/backprop_mpi.h "$libdir/pkgconfig/backprop-mpi.pc"; do
        [[ -f "$prefix/$f" ]] || die "missing $prefix/$f"
    done
    static=()
    [[ $mode == pkgconfig-static ]] && static=(--static)
    export PKG_CONFIG_PATH="$prefix/$libdir/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
    [[ $(pkg-config --variable=prefix backprop-mpi) == "$prefix" ]] ||
        die "pkg-config found another backprop-mpi"
    cflags=$(pkg-config --cflags backprop-mpi)
    libs=$(pkg-config "${static[@]}" --libs backprop-mpi)
    echo "pkg-config ${static[*]} backprop-mpi: $cflags $libs"
    rm -rf "$work" && mkdir -p "$work"
    # shellcheck disable=SC2086 # word splitting of the flags is intended
    step "$cc" -std=c99 -Wall -Wextra -Wpedantic -Werror $cflags -o "$work/consumer_mpi" \
        "$src/consumer_mpi.c" $libs
    export LD_LIBRARY_PATH="$prefix/$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    step "$@" "$work/consumer_mpi"
    ;;
find-package)
    prefix=$1 work=$2 src=$3 cmake=$4
    shift 4
    [[ ${1:-} == -- ]] || die "missing -- before the launcher"
    shift
    rm -rf "$work"
    step "$cmake" -S "$src/find_package" -B "$work" -DCMAKE_PREFIX_PATH="$prefix"
    step "$cmake" --build "$work"
    step "$@" "$work/consumer_mpi"
    # OPTIONAL_COMPONENTS mpi finds it too (tests/consumer/components).
    step "$cmake" -S "$src/../consumer/components" -B "$work/optional" \
        -DCMAKE_PREFIX_PATH="$prefix" -DBP_CASE=optional-mpi -DBP_EXPECT_MPI=ON
    ;;
*)
    die "unknown mode '$mode'"
    ;;
esac
