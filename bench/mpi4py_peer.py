# SPDX-License-Identifier: BSL-1.0
# bench/mpi4py_peer.py: mpi4py.futures.MPIPoolExecutor on the figures of bench/mpi_bench.cpp, same machine, same run:
#   mpirun -n 3 /usr/bin/python3 -m mpi4py.futures bench/mpi4py_peer.py [--quick]
# (Debian python3-mpi4py; rank 0 runs this, ranks 1 and 2 are its workers.) Prints "name value unit" lines.
import sys
import time

from mpi4py.futures import MPIPoolExecutor


def tiny(x):
    return x + 1


def nbytes(b):
    return len(b)


def main():
    quick = "--quick" in sys.argv
    n = 200 if quick else 2000
    with MPIPoolExecutor() as ex:
        for i in range(50):
            ex.submit(tiny, i).result()
        rt = []
        for i in range(n):
            t = time.perf_counter()
            ex.submit(tiny, i).result()
            rt.append((time.perf_counter() - t) * 1e6)
        rt.sort()
        print(f"mpi_round_trip_us {rt[len(rt) // 2]:.2f}")

        tasks = 5000 if quick else 20000
        best = 0
        for _ in range(3):
            t = time.perf_counter()
            fs = [ex.submit(tiny, i) for i in range(tasks)]
            for f in fs:
                f.result()
            best = max(best, tasks / (time.perf_counter() - t))
        print(f"submit_each_per_s {best:.0f}")

        items = 200000 if quick else 2000000
        xs = [1] * items
        best = 0
        for _ in range(3):
            t = time.perf_counter()
            list(ex.map(tiny, xs, chunksize=1000))
            best = max(best, items / (time.perf_counter() - t))
        print(f"map_chunks1000_per_s {best:.0f}")

        arg = bytes(64 << 20)
        best = 1e18
        for _ in range(3):
            t = time.perf_counter()
            ex.submit(nbytes, arg).result()
            best = min(best, time.perf_counter() - t)
        print(f"arg_64mib_gbs {len(arg) / best / 1e9:.3f}")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
