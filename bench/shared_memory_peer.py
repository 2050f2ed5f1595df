#!/usr/bin/env python3
# SPDX-License-Identifier: BSL-1.0
# bench/shared_memory_peer.py: Python's ways to hand a large array of doubles to a worker process and sum it there,
# measured the way shared_memory_bench.cpp measures procpool's. Prints one line per size and way:
#   <bytes> <way> <median seconds per call> | n/a
# Ways: pickle (ProcessPoolExecutor, the array pickled each call), shm_name (multiprocessing.shared_memory, attached
# by name in the worker each call), joblib (Parallel with memmapping of a NumPy array, max_nbytes=1M).
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor

try:
    import numpy as np
except ImportError:  # the columns that need NumPy read n/a
    np = None


def reps_for(nbytes):
    return 30 if nbytes <= (1 << 20) else 8 if nbytes <= (64 << 20) else 3


def median_time(fn, reps):
    fn()  # warm-up: the worker has started, the code paths are hot
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def np_sum(a):
    return float(a.sum())


def list_sum(a):
    return float(sum(a))


def sum_by_name(name, n):
    from multiprocessing import shared_memory
    s = shared_memory.SharedMemory(name=name)
    try:
        if np is not None:
            a = np.ndarray((n,), dtype=np.float64, buffer=s.buf)
            r = float(a.sum())
            del a
        else:
            m = s.buf.cast("d")
            r = float(sum(m))
            m.release()
        return r
    finally:
        s.close()


def main():
    sizes = [int(x) for x in sys.argv[1:]]
    from multiprocessing import shared_memory
    with ProcessPoolExecutor(max_workers=1) as ex:
        for nbytes in sizes:
            n = nbytes // 8
            reps = reps_for(nbytes)
            if np is not None:
                arr = np.ones(n, dtype=np.float64)
                f = np_sum
            else:
                from array import array
                arr = array("d", [1.0]) * n
                f = list_sum
            print(nbytes, "pickle", median_time(lambda: ex.submit(f, arr).result(), reps), flush=True)

            shm = shared_memory.SharedMemory(create=True, size=nbytes)
            try:
                if np is not None:
                    view = np.ndarray((n,), dtype=np.float64, buffer=shm.buf)
                    view[:] = 1.0
                    del view
                else:
                    shm.buf.cast("d")[:] = arr
                print(nbytes, "shm_name", median_time(lambda: ex.submit(sum_by_name, shm.name, n).result(), reps),
                      flush=True)
            finally:
                shm.close()
                shm.unlink()

            try:
                if np is None:
                    raise ImportError
                from joblib import Parallel, delayed
                with Parallel(n_jobs=2, max_nbytes="1M", mmap_mode="r") as par:
                    t = median_time(lambda: par([delayed(np_sum)(arr)]), reps)
                print(nbytes, "joblib", t, flush=True)
            except ImportError:
                print(nbytes, "joblib", "n/a", flush=True)
            del arr


if __name__ == "__main__":
    main()
