# gnuplot script: export time against copy time by size, from export.dat
# (columns: kind size export_ns copy_ns first_touch_ns release_ns).
set terminal pngcairo size 900,560 font ",10"
set logscale xy
set xlabel "size (bytes)"
set ylabel "time (µs), median"
set key top left
set grid
set title "vmemexp export vs copy into a memfd pool (guest under TCG)"
plot datafile using ($1==0?$2:1/0):($3/1000) with linespoints title "export, 4 KiB pages", \
     datafile using ($1==1?$2:1/0):($3/1000) with linespoints title "export, THP", \
     datafile using ($1==2?$2:1/0):($3/1000) with linespoints title "export, hugetlb", \
     datafile using ($1==0?$2:1/0):($4/1000) with linespoints dashtype 2 title "memcpy into memfd", \
     datafile using ($1==1?$2:1/0):($5/1000) with linespoints dashtype 3 title "peer's first touch (THP)", \
     datafile using ($1==1?$2:1/0):($6/1000) with linespoints dashtype 4 title "release (THP)"
