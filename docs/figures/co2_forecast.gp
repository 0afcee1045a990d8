# Test-period forecasts of docs/examples/co2_forecast.c against the truth (weekly Mauna Loa
# CO2, python3-statsmodels). Regenerate (from the repository root, after building the
# examples):
#   build/demo/docs/examples/co2_forecast --out docs/figures/co2_forecast.dat
#   gnuplot docs/figures/co2_forecast.gp
set terminal pngcairo size 900,500 font ",11"
set output "docs/figures/co2_forecast.png"
set title "Mauna Loa CO2, test weeks: LSTM one week ahead vs the seasonal-naive forecast"
set xlabel "year"
set ylabel "CO2 (ppm)"
set key top left
set grid
plot "docs/figures/co2_forecast.dat" using 1:2 with lines lw 3 lc rgb "#999999" title "truth", \
     "" using 1:4 with lines lw 1 lc rgb "#d95f02" title "seasonal naive (52 weeks earlier)", \
     "" using 1:3 with lines lw 1.5 lc rgb "#1b63a5" title "LSTM forecast"
