#!/usr/bin/env bash
# run.sh -- packaging tests driven by ctest (see CMakeLists.txt beside this file).
#
#   run.sh install       BUILD PREFIX LIBDIR           install BUILD into PREFIX, check the layout
#   run.sh pkgconfig     PREFIX LIBDIR WORK SRC CC     C consumer via pkg-config (shared library)
#   run.sh pkgconfig-static PREFIX LIBDIR WORK SRC CC  same with pkg-config --static (libbackprop.a)
#   run.sh find-package  HOW PATH PKGDIR WORK SRC CMAKE VERSION REQUEST
#                        C++17 consumer via find_package(backprop REQUEST); HOW=prefix: PATH
#                        goes in CMAKE_PREFIX_PATH; HOW=dir: PATH is backprop_DIR. The package
#                        must be found in PKGDIR, report VERSION, and not look for MPI.
#   run.sh versions      PKGDIR WORK SRC CMAKE VERSION
#                        which find_package(backprop <request>) calls accept VERSION
#   run.sh subdirectory  TOP WORK SRC CMAKE
#                        configure a parent project that add_subdirectory()s the source tree
#                        TOP; backprop must not change the parent's settings
#   run.sh without-mpi   PREFIX LIBDIR WORK SRC CMAKE WITH_MPI
#                        copy PREFIX, delete every file of the MPI component from the copy
#                        (as a distribution that packages it separately), then: the plain
#                        find_package consumer still builds and runs, COMPONENTS mpi fails
#                        with a message, OPTIONAL_COMPONENTS mpi is found without it.
#                        WITH_MPI=ON: the original prefix must have had those files.
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
    pkg="$prefix/$libdir/cmake/backprop"
    for f in include/backprop.h include/backprop.hpp "$libdir/pkgconfig/backprop.pc" \
             "$libdir/cmake/backprop/backpropConfig.cmake" \
             "$libdir/cmake/backprop/backpropConfigVersion.cmake" \
             "$libdir/cmake/backprop/backpropTargets.cmake"; do
        [[ -f "$prefix/$f" ]] || die "missing $prefix/$f"
    done
    ls "$prefix/$libdir"/libbackprop.* >/dev/null 2>&1 || die "no libbackprop in $prefix/$libdir"
    # The MPI component has its own export set: the core's targets file never names it.
    ! grep -q 'backprop::mpi' "$pkg"/backpropTargets*.cmake ||
        die "backpropTargets.cmake defines backprop::mpi (it belongs in backpropMpiTargets.cmake)"
    if compgen -G "$prefix/$libdir/libbackprop_mpi.*" >/dev/null; then
        [[ -f "$pkg/backpropMpiTargets.cmake" ]] || die "libbackprop_mpi without its targets file"
    fi
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
    how=$1 path=$2 pkgdir=$3 work=$4 src=$5 cmake=$6 version=$7 request=$8
    case "$how" in
    prefix) search=(-DCMAKE_PREFIX_PATH="$path") ;;
    dir) search=(-Dbackprop_DIR="$path") ;;
    *) die "find-package: HOW must be prefix or dir, not '$how'" ;;
    esac
    rm -rf "$work"
    step "$cmake" -S "$src/find_package" -B "$work" "${search[@]}" \
        -DBP_EXPECT_DIR="$pkgdir" -DBP_EXPECT_VERSION="$version" -DBP_REQUEST_VERSION="$request"
    step "$cmake" --build "$work"
    step "$work/consumer_cpp"
    ;;
versions)
    pkgdir=$1 work=$2 src=$3 cmake=$4 version=$5
    rm -rf "$work"
    step "$cmake" -S "$src/versions" -B "$work" -DBP_PACKAGE_DIR="$pkgdir" \
        -DBP_VERSION="$version"
    ;;
subdirectory)
    top=$1 work=$2 src=$3 cmake=$4
    rm -rf "$work"
    step "$cmake" -S "$src/subdirectory" -B "$work" -DBP_SOURCE_DIR="$top"
    ;;
without-mpi)
    prefix=$1 libdir=$2 work=$3 src=$4 cmake=$5 with_mpi=$6
    core="$work/prefix"
    pkg="$core/$libdir/cmake/backprop"
    rm -rf "$work" && mkdir -p "$work"
    step cp -a "$prefix" "$core"
    mpi_files=("$pkg"/backpropMpiTargets*.cmake "$core/$libdir"/libbackprop_mpi.* \
               "$core/include/backprop_mpi.h" "$core/$libdir/pkgconfig/backprop-mpi.pc")
    present=()
    for f in "${mpi_files[@]}"; do [[ -e $f ]] && present+=("$f"); done
    if [[ $with_mpi == ON ]]; then
        [[ -f "$pkg/backpropMpiTargets.cmake" ]] || die "no backpropMpiTargets.cmake in $prefix"
        compgen -G "$core/$libdir/libbackprop_mpi.*" >/dev/null || die "no libbackprop_mpi"
    fi
    if ((${#present[@]})); then step rm -f "${present[@]}"; fi
    # A plain consumer (find_package(backprop 0)): configures, builds, runs, no MPI looked for.
    step "$cmake" -S "$src/find_package" -B "$work/plain" -DCMAKE_PREFIX_PATH="$core" \
        -DBP_EXPECT_DIR="$pkg" -DBP_REQUEST_VERSION=0
    step "$cmake" --build "$work/plain"
    step "$work/plain/consumer_cpp"
    # OPTIONAL_COMPONENTS mpi: backprop found, backprop_mpi_FOUND false.
    step "$cmake" -S "$src/components" -B "$work/optional" -DCMAKE_PREFIX_PATH="$core" \
        -DBP_CASE=optional-mpi -DBP_EXPECT_MPI=OFF
    # COMPONENTS mpi: not found, and the message says why.
    if out=$("$cmake" -S "$src/components" -B "$work/required" -DCMAKE_PREFIX_PATH="$core" \
        -DBP_CASE=required-mpi -DBP_EXPECT_MPI=OFF 2>&1); then
        echo "$out"
        grep -q "no component 'mpi': it is not installed" <<<"$out" ||
            die "find_package(backprop COMPONENTS mpi) gave no reason for failing"
    else
        echo "$out"
        die "the components consumer failed"
    fi
    ;;
*)
    die "unknown mode '$mode'"
    ;;
esac
