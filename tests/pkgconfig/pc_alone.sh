#!/usr/bin/env bash
# pc_alone.sh PREFIX LIBDIR WORK CC MODE -- backprop.pc works on its own: with pkg-config
# seeing only PREFIX's pkgconfig directory (no openblas.pc, no zlib.pc, as on systems that
# ship those libraries without .pc files), build and run a consumer. MODE is "shared"
# (plain flags) or "static" (--static, libbackprop.a).
set -euo pipefail
prefix=$1 libdir=$2 work=$3 cc=$4 mode=$5
export PKG_CONFIG_LIBDIR="$prefix/$libdir/pkgconfig"
unset PKG_CONFIG_PATH
pkg-config --exists --print-errors openblas 2>/dev/null && { echo "openblas.pc is visible" >&2; exit 1; }
flags=(--cflags --libs)
[[ $mode == static ]] && flags=(--static --cflags --libs)
pc=$(pkg-config --print-errors "${flags[@]}" backprop)
echo "+ pkg-config ${flags[*]} backprop: $pc"
rm -rf "$work" && mkdir -p "$work"
cat > "$work/alone.c" <<'C'
#include <backprop.h>
#include <stdio.h>
#include <string.h>
int main(void)
{
    bp_net *net;
    if (bp_net_create(&net, 2, 1) != BP_OK || bp_net_add_dense(net, 1, BP_ACT_IDENTITY) != BP_OK)
        return 1;
    printf("libbackprop %s, %zu parameters\n", bp_version_string(), bp_net_param_count(net));
    bp_net_free(net);
    return strcmp(bp_version_string(), BP_VERSION_STRING) != 0;
}
C
# shellcheck disable=SC2086 # the flags are words
"$cc" "$work/alone.c" -o "$work/alone" $pc
LD_LIBRARY_PATH="$prefix/$libdir" "$work/alone"
