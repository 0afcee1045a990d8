#!/bin/sh
# plot_history.sh -- plot a training history CSV (bp_net_history_save_csv) with gnuplot:
# loss and accuracy per epoch, training and validation, side by side.
#
#   docs/figures/plot_history.sh HISTORY.csv OUT.png [TITLE]
#
# The committed figure docs/figures/fashion_mnist_curves.png was made with
#   build/demo/docs/examples/fashion_mnist --epochs 10 --history fm.csv
#   docs/figures/plot_history.sh fm.csv docs/figures/fashion_mnist_curves.png \
#       "Fashion-MNIST, MLP 784-256-128-10, Adam + cosine, batch 64"
# Needs gnuplot (Debian: gnuplot-nox). Uses the pngcairo terminal when gnuplot has it,
# otherwise the libgd png terminal.
set -eu
[ $# -ge 2 ] || { echo "usage: $0 HISTORY.csv OUT.png [TITLE]" >&2; exit 1; }
csv=$1 out=$2 title=${3:-$(basename "$csv")}
if gnuplot -e 'set terminal' 2>&1 | grep -q pngcairo; then
    term="pngcairo size 1100,420 font 'DejaVu Sans,10'"
else
    term="png size 1100,420"
fi
gnuplot <<GP
set terminal $term
set output '$out'
set datafile separator ','
set datafile missing 'nan'
set multiplot layout 1,2 title "$title"
set xlabel 'epoch'
set grid
set key top right
set ylabel 'loss (cross-entropy)'
plot '$csv' using (column('epoch')+1):(column('loss')) with linespoints pt 7 ps 0.6 title 'training', \
     '' using (column('epoch')+1):(column('val_loss')) with linespoints pt 5 ps 0.6 title 'test'
set key bottom right
set ylabel 'accuracy'
plot '$csv' using (column('epoch')+1):(column('accuracy')) with linespoints pt 7 ps 0.6 title 'training', \
     '' using (column('epoch')+1):(column('val_accuracy')) with linespoints pt 5 ps 0.6 title 'test'
unset multiplot
GP
echo "wrote $out"
