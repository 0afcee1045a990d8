# Per-layer gradient norms of the two 10-hidden-layer MLPs of docs/examples/deep_mlp.c.
# Regenerate (from the repository root, after building the examples):
#   build/docs/examples/deep_mlp --out docs/figures/deep_mlp_grad_norms.dat
#   gnuplot docs/figures/deep_mlp_grad_norms.gp
set terminal pngcairo size 800,500 font ",11"
set output "docs/figures/deep_mlp_grad_norms.png"
set title "Mean gradient norm ||dW, db|| of each dense layer (Fashion-MNIST, 5 epochs)"
set xlabel "dense layer (1 = next to the input, 11 = softmax output)"
set ylabel "gradient L2 norm (log scale)"
set logscale y
set format y "10^{%L}"
set xtics 1
set key bottom right
set grid
plot "docs/figures/deep_mlp_grad_norms.dat" using 1:2 with linespoints lw 2 pt 7 \
         title "sigmoid, N(0, 0.01^2) init", \
     "" using 1:3 with linespoints lw 2 pt 5 title "dense + batch norm + ReLU, He init"
