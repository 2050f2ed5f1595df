#!/usr/bin/env bash
# SPDX-License-Identifier: BSL-1.0
# procpool over MPI next to mpi4py.futures.MPIPoolExecutor, same machine, same run (docs/mpi.md, "Performance"):
#   bench/mpi_bench.sh <build dir> [--quick]
# Needs procpool_mpi_bench built (cmake --build <build> --target procpool_mpi_bench) and /usr/bin/python3 with mpi4py
# (Debian python3-mpi4py). 3 ranks: rank 0 owns the pool, 2 workers (procpool: 2 node agents x 1 worker).
set -euo pipefail
build=${1:?usage: bench/mpi_bench.sh <build dir> [--quick]}
quick=${2:-}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
pp=$(mpirun --oversubscribe -n 3 "$build/bench/procpool_mpi_bench" $quick)
py=$(mpirun --oversubscribe -n 3 /usr/bin/python3 -m mpi4py.futures "$repo/bench/mpi4py_peer.py" $quick)
get() { awk -v k="$2" '$1 == k { print $2 }' <<<"$1"; }
printf '%-34s %14s %14s %8s  %s\n' figure procpool mpi4py ratio target
row() { # <key> <label> <higher is better: 1|0> <target text>
    local a b
    a=$(get "$pp" "$1"); b=$(get "$py" "$1")
    local r
    r=$(awk -v a="$a" -v b="$b" -v h="$3" 'BEGIN { if (a == "" || b == "" || a == 0 || b == 0) print "n/a"; else printf "%.1fx", h ? a / b : b / a }')
    printf '%-34s %14s %14s %8s  %s\n' "$2" "$a" "${b:-n/a}" "$r" "$4"
}
row mpi_round_trip_us "round trip (us, median)" 0 ""
row submit_each_per_s "one submit per tiny task (/s)" 1 ">= 10x"
row map_chunks1000_per_s "map, chunksize 1000 (items/s)" 1 ">= 3x"
row arg_64mib_gbs "64 MiB argument (GB/s)" 1 ">= 5x"
raw=$(get "$pp" raw_pingpong_us); loc=$(get "$pp" local_round_trip_us); rt=$(get "$pp" mpi_round_trip_us)
awk -v raw="$raw" -v loc="$loc" -v rt="$rt" 'BEGIN {
    printf "round trip %.1f us vs the two hops: raw MPI ping-pong %.1f us + procpool local round trip %.1f us = %.1f us: %.2fx (target <= 1.5x)\n",
        rt, raw, loc, raw + loc, rt / (raw + loc) }'
echo "raw MPI 64 MiB one way: $(get "$pp" raw_64mib_gbs) GB/s"
