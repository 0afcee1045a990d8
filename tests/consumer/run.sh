#!/usr/bin/env bash
# run.sh -- packaging tests driven by ctest (see CMakeLists.txt beside this file).
#
#   run.sh install       BUILD PREFIX LIBDIR           install BUILD into PREFIX, check the layout
#   run.sh pkgconfig     PREFIX LIBDIR WORK SRC CC     C consumer via pkg-config (shared library)
#   run.sh pkgconfig-static PREFIX LIBDIR WORK SRC CC  same with pkg-config --static (libbackprop.a)
#   run.sh find-package  HOW PATH PKGDIR WORK SRC CMAKE VERSION
#                        C++17 consumer via find_package(backprop); HOW=prefix: PATH goes in
#                        CMAKE_PREFIX_PATH; HOW=dir: PATH is backprop_DIR. The package must be
#                        found in PKGDIR.
#
# Every step must succeed and the consumer must exit 0 for the test to pass.
set -euo pipefail

die() { echo "run.sh: $*" >&2; exit 1; }
step() { echo "+ $*" >&2; "$@"; }

mode=${1:?mode}
shift

case "$mode" in
install)
    build=$1 prefix=$2 libdir=$3
    rm -rf "$prefix"
    step "${CMAKE:-cmake}" --install "$build" --prefix "$prefix"
    for f in include/backprop.h include/backprop.hpp "$libdir/pkgconfig/backprop.pc" \
             "$libdir/cmake/backprop/backpropConfig.cmake" \
             "$libdir/cmake/backprop/backpropConfigVersion.cmake" \
             "$libdir/cmake/backprop/backpropTargets.cmake"; do
        [[ -f "$prefix/$f" ]] || die "missing $prefix/$f"
    done
    ls "$prefix/$libdir"/libbackprop.* >/dev/null 2>&1 || die "no libbackprop in $prefix/$libdir"
    grep -qx "prefix=$prefix" "$prefix/$libdir/pkgconfig/backprop.pc" ||
        die "backprop.pc does not point at the install prefix $prefix"
    echo "installed into $prefix"
    ;;
pkgconfig | pkgconfig-static)
    prefix=$1 libdir=$2 work=$3 src=$4 cc=$5
    static=()
    [[ $mode == pkgconfig-static ]] && static=(--static)
    export PKG_CONFIG_PATH="$prefix/$libdir/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
    rm -rf "$work" && mkdir -p "$work"
    [[ $(pkg-config --variable=prefix backprop) == "$prefix" ]] ||
        die "pkg-config found another backprop"
    cflags=$(pkg-config --cflags backprop)
    libs=$(pkg-config "${static[@]}" --libs backprop)
    echo "pkg-config ${static[*]} backprop: $cflags $libs"
    # shellcheck disable=SC2086 # word splitting of the flags is intended
    step "$cc" -std=c99 -Wall -Wextra -Wpedantic -Werror $cflags -o "$work/consumer" \
        "$src/consumer.c" $libs
    if [[ $mode == pkgconfig-static ]]; then
        dyn=$(readelf -d "$work/consumer")
        ! grep -q 'NEEDED.*libbackprop' <<<"$dyn" ||
            die "the --static consumer depends on a shared libbackprop"
        step "$work/consumer"
    else
        export LD_LIBRARY_PATH="$prefix/$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
        # Capture first: `ldd | grep -q` can fail under pipefail when grep exits early.
        deps=$(ldd "$work/consumer")
        grep -q "libbackprop.so.0 => $prefix/$libdir/libbackprop.so.0" <<<"$deps" ||
            die "the consumer does not load libbackprop.so.0 from $prefix/$libdir"
        step "$work/consumer"
    fi
    ;;
find-package)
    how=$1 path=$2 pkgdir=$3 work=$4 src=$5 cmake=$6 version=$7
    case "$how" in
    prefix) search=(-DCMAKE_PREFIX_PATH="$path") ;;
    dir) search=(-Dbackprop_DIR="$path") ;;
    *) die "find-package: HOW must be prefix or dir, not '$how'" ;;
    esac
    rm -rf "$work"
    step "$cmake" -S "$src/find_package" -B "$work" "${search[@]}" \
        -DBP_EXPECT_DIR="$pkgdir" -DBP_EXPECT_VERSION="$version"
    step "$cmake" --build "$work"
    step "$work/consumer_cpp"
    ;;
*)
    die "unknown mode '$mode'"
    ;;
esac
