#!/usr/bin/env python3
# SPDX-License-Identifier: BSL-1.0
"""Python peer of bench/isolation_bench.cpp: tiny tasks with a fresh process per task in Python's pools.

Pool(maxtasksperchild=1) under fork, forkserver and spawn; ProcessPoolExecutor(max_tasks_per_child=1) (Python >= 3.11)
under forkserver and spawn. Prints one flat JSON object: mode -> tasks per second (null: not measured).
Run by hand:  python3 bench/isolation_peer.py --tasks 100 --workers 2
"""
import argparse
import json
import multiprocessing as mp
import sys
import time
from concurrent.futures import ProcessPoolExecutor


def tiny(x):
    return x + 1


def pool_rate(method, tasks, workers):
    ctx = mp.get_context(method)
    with ctx.Pool(workers, maxtasksperchild=1) as p:
        p.map(tiny, range(workers), chunksize=1)  # warm: the pool exists
        t0 = time.perf_counter()
        p.map(tiny, range(tasks), chunksize=1)
        return tasks / (time.perf_counter() - t0)


def executor_rate(method, tasks, workers):
    if sys.version_info < (3, 11):
        return None
    with ProcessPoolExecutor(workers, mp_context=mp.get_context(method), max_tasks_per_child=1) as ex:
        list(ex.map(tiny, range(workers)))
        t0 = time.perf_counter()
        list(ex.map(tiny, range(tasks)))
        return tasks / (time.perf_counter() - t0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=100)
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    out = {}
    for m in ("fork", "forkserver", "spawn"):
        out["Pool(maxtasksperchild=1) " + m] = pool_rate(m, a.tasks, a.workers)
    for m in ("forkserver", "spawn"):
        out["ProcessPoolExecutor(max_tasks_per_child=1) " + m] = executor_rate(m, a.tasks, a.workers)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
