#!/bin/sh
# plot_history.sh -- plot a training history CSV (bp_net_history_save_csv, `backprop train
# --history`) with gnuplot: the loss per epoch beside accuracy (classification) or mean
# absolute error (regression), training and, when the history has them, validation.
#
#   docs/figures/plot_history.sh [-f] HISTORY.csv OUT.png [TITLE]
#
# Writes OUT.png and nothing else; an existing OUT.png is kept unless -f is given, so that
# redrawing a figure for yourself does not overwrite a committed one by accident. Panels and
# curves whose column holds only "nan" (accuracy of a regression, validation without a
# validation set) are left out. Exit status 0 on success, 1 on a failure, 2 on a usage error.
#
# The committed figure docs/figures/fashion_mnist_curves.png was made with
#   build/demo/docs/examples/fashion_mnist --epochs 10 --history fm.csv
#   docs/figures/plot_history.sh -f fm.csv docs/figures/fashion_mnist_curves.png \
#       "Fashion-MNIST, MLP 784-256-128-10, Adam + cosine, batch 64"
# Needs gnuplot (Debian: gnuplot-nox). Uses the pngcairo terminal when gnuplot has it,
# otherwise the libgd png terminal.
set -eu
usage() { echo "usage: $0 [-f] HISTORY.csv OUT.png [TITLE]" >&2; exit 2; }
force=0
if [ "${1:-}" = "-f" ]; then force=1; shift; fi
[ $# -ge 2 ] && [ $# -le 3 ] || usage
csv=$1 out=$2 title=${3:-$(basename "$csv")}
[ -r "$csv" ] || { echo "$0: cannot read $csv" >&2; exit 1; }
if [ -e "$out" ] && [ $force -eq 0 ]; then
    echo "$0: $out exists; give -f to overwrite it" >&2
    exit 1
fi
command -v gnuplot >/dev/null || { echo "$0: gnuplot not found (apt-get install gnuplot-nox)" >&2; exit 1; }

# The columns that hold at least one number (not "nan"), from the header's names.
present=$(awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) name[i] = $i; n = NF; next }
    { for (i = 1; i <= n; i++) if ($i != "nan" && $i != "") seen[i] = 1 }
    END { for (i = 1; i <= n; i++) if (seen[i]) printf "%s ", name[i] }' "$csv")
has() { case " $present " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
has epoch && has loss || { echo "$0: $csv has no epoch and loss columns with numbers" >&2; exit 1; }
if has accuracy; then
    metric=accuracy label='accuracy' key='bottom right'
elif has mae; then
    metric=mae label='mean absolute error' key='top right'
else
    metric=''
fi

# One plot command per panel: the training curve, and the validation curve if present.
curves() { # $1 = column
    printf "'%s' using (column('epoch')+1):(column('%s')) with linespoints pt 7 ps 0.6 title 'training'" "$csv" "$1"
    if has "val_$1"; then
        printf ", '' using (column('epoch')+1):(column('val_%s')) with linespoints pt 5 ps 0.6 title 'validation'" "$1"
    fi
}
if gnuplot -e 'set terminal' 2>&1 | grep -q pngcairo; then
    term="pngcairo size 1100,420 font 'DejaVu Sans,10'"
else
    term="png size 1100,420"
fi
layout=2
[ -n "$metric" ] || layout=1
tmp="$out.tmp.$$"
trap 'rm -f "$tmp"' EXIT
gnuplot <<GP
set terminal $term
set output '$tmp'
set datafile separator ','
set datafile missing 'nan'
set multiplot layout 1,$layout title "$title"
set xlabel 'epoch'
set grid
set key top right
set ylabel 'loss'
plot $(curves loss)
$(if [ -n "$metric" ]; then printf "set key %s\nset ylabel '%s'\nplot %s\n" "$key" "$label" "$(curves "$metric")"; fi)
unset multiplot
GP
mv "$tmp" "$out"
trap - EXIT
echo "wrote $out"
