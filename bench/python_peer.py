#!/usr/bin/env python3
# SPDX-License-Identifier: BSL-1.0
"""Python peer of bench/procpool_bench.cpp: the same five figures (P1..P5), measured with Python's own pools.

multiprocessing.Pool and concurrent.futures.ProcessPoolExecutor (stdlib), plus joblib when it can be imported.
procpool_bench runs this script as a subprocess in the same run and reads the one JSON object it prints on
stdout (flat: name -> number, string or null; null means "not measured"). Progress goes to stderr.

Run by hand:  python3 bench/python_peer.py --sizes 1000,100000,1000000 --p1 10000 --payload-mib 64
"""
import argparse
import json
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor

# Tasks live at module level: spawned workers import this module (as __mp_main__) to find them.
# joblib is imported lazily, so a spawned worker and the idle baseline import the same modules.


def tiny(x):
    return x + 1


def nbytes(b):
    return len(b)


def log(msg):
    print(f"[python_peer] {msg}", file=sys.stderr, flush=True)


def now():
    return time.perf_counter()


def pct(values, p):
    """Nearest-rank percentile of a non-empty list."""
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(round(p / 100.0 * len(s) + 0.5)) - 1))
    return s[k]


def rss(pid):
    """Resident set size of a process in bytes (Linux /proc), or None."""
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGESIZE")
    except (OSError, ValueError, IndexError):
        return None


def uss(pid):
    """Private (unshared) resident bytes of a process, or None."""
    try:
        total = 0
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith(("Private_Clean:", "Private_Dirty:")):
                    total += int(line.split()[1]) * 1024
        return total
    except (OSError, ValueError, IndexError):
        return None


def try_joblib():
    try:
        import joblib  # noqa: F401

        return joblib
    except Exception:  # ImportError, or a broken installation
        return None


# ---- P1: round trip of one tiny task on a warm pool --------------------------------------------------------------
def round_trips(call, n, warm):
    for _ in range(warm):
        call()
    out = []
    for _ in range(n):
        t = now()
        call()
        out.append((now() - t) * 1e6)
    return out


def p1(res, n):
    log(f"P1: {n} round trips")
    with mp.Pool(2) as pool:
        us = round_trips(lambda: pool.apply(tiny, (1,)), n, min(500, n))
        res["p1_pool_apply_median_us"] = statistics.median(us)
        res["p1_pool_apply_p99_us"] = pct(us, 99)
    with ProcessPoolExecutor(2) as ex:
        us = round_trips(lambda: ex.submit(tiny, 1).result(), n, min(500, n))
        res["p1_ppe_median_us"] = statistics.median(us)
        res["p1_ppe_p99_us"] = pct(us, 99)
    jl = try_joblib()
    if jl:
        par = jl.Parallel(n_jobs=2)
        m = max(20, n // 20)  # a Parallel call per task is slow: fewer of them
        us = round_trips(lambda: par(jl.delayed(tiny)(1) for _ in range(1)), m, min(50, m))
        res["p1_joblib_median_us"] = statistics.median(us)
        res["p1_joblib_p99_us"] = pct(us, 99)


# ---- P2: throughput of tiny tasks --------------------------------------------------------------------------------
def best_rate(run, n, reps):
    """Median rate (tasks/s) over `reps` runs of run(n)."""
    rates = []
    for _ in range(reps):
        t = now()
        run(n)
        rates.append(n / (now() - t))
    return statistics.median(rates)


def reps_for(n, budget_tasks, lo=1, hi=9):
    return max(lo, min(hi, budget_tasks // max(1, n)))


def p2(res, sizes, imap_max):
    with mp.Pool(2) as pool:
        pool.apply(tiny, (1,))

        def imap1(n):
            for _ in pool.imap_unordered(tiny, range(n), chunksize=1):
                pass

        def map1000(n):
            pool.map(tiny, range(n), chunksize=1000)

        for n in sizes:
            if n <= imap_max:
                log(f"P2: Pool.imap_unordered(chunksize=1), {n} tasks")
                res[f"p2_imap1_{n}"] = best_rate(imap1, n, reps_for(n, 300_000, 1, 5))
            else:
                res[f"p2_imap1_{n}"] = None
            log(f"P2: Pool.map(chunksize=1000), {n} tasks")
            res[f"p2_map1000_{n}"] = best_rate(map1000, n, reps_for(n, 2_000_000, 3, 9))
    with ProcessPoolExecutor(2) as ex:
        ex.submit(tiny, 1).result()

        def ppe(n):
            fs = [ex.submit(tiny, i) for i in range(n)]
            for f in fs:
                f.result()

        for n in sizes:
            if n <= imap_max // 5:  # about 4000 tasks/s: only the small sizes
                log(f"P2: ProcessPoolExecutor.submit each, {n} tasks")
                res[f"p2_ppe_{n}"] = best_rate(ppe, n, reps_for(n, 20_000, 1, 5))
            else:
                res[f"p2_ppe_{n}"] = None
    jl = try_joblib()
    par = jl.Parallel(n_jobs=2) if jl else None
    for n in sizes:
        if par and n <= 10 * imap_max:
            log(f"P2: joblib Parallel(n_jobs=2), one delayed call each, {n} tasks")
            par(jl.delayed(tiny)(i) for i in range(100))  # warm the reusable executor

            def run(n):
                par(jl.delayed(tiny)(i) for i in range(n))

            res[f"p2_joblib_{n}"] = best_rate(run, n, reps_for(n, 1_000_000, 1, 5))
        else:
            res[f"p2_joblib_{n}"] = None


# ---- P3: pool of 2 workers constructed until the first result ----------------------------------------------------
def p3(res, reps):
    for method in ("fork", "spawn", "forkserver"):
        if method not in mp.get_all_start_methods():
            res[f"p3_{method}_ms"] = None
            continue
        log(f"P3: Pool(2) with {method} to the first result, {reps} times")
        ctx = mp.get_context(method)
        ms = []
        for _ in range(reps):
            t = now()
            pool = ctx.Pool(2)
            pool.apply(tiny, (1,))
            ms.append((now() - t) * 1e3)
            pool.terminate()
            pool.join()
        res[f"p3_{method}_ms"] = statistics.median(ms)


# ---- P4: a large bytes argument whose size the task returns ------------------------------------------------------
def p4(res, mib, reps):
    data = bytes(range(256)) * (mib * 4096)  # mib MiB, touched
    assert len(data) == mib << 20

    def gbps(call):
        call()  # warm: the worker's buffers
        rates = []
        for _ in range(reps):
            t = now()
            n = call()
            rates.append(len(data) / (now() - t) / 1e9)
            assert n == len(data)
        return statistics.median(rates)

    log(f"P4: {mib} MiB argument, {reps} times each")
    with ProcessPoolExecutor(2) as ex:
        res["p4_ppe_gbps"] = gbps(lambda: ex.submit(nbytes, data).result())
    with mp.Pool(2) as pool:
        res["p4_pool_apply_gbps"] = gbps(lambda: pool.apply(nbytes, (data,)))
    jl = try_joblib()
    if jl:
        par = jl.Parallel(n_jobs=2)
        res["p4_joblib_gbps"] = gbps(lambda: par([jl.delayed(nbytes)(data)])[0])


# ---- P5: memory ----------------------------------------------------------------------------------------------------
def idle_baseline():
    """This script started again, idling: the interpreter's own baseline (same imports as a spawned worker)."""
    p = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--idle"], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE)
    p.stdout.readline()  # "ready"
    time.sleep(0.2)
    r = rss(p.pid)
    p.stdin.close()
    p.wait()
    return r


def p5(res, queued):
    log("P5: memory")
    res["p5_baseline_rss"] = idle_baseline()
    for method in ("spawn", "fork"):
        ctx = mp.get_context(method)
        with ctx.Pool(2) as pool:
            for i in range(200):
                pool.apply(tiny, (i,))
            time.sleep(0.2)
            pids = [p.pid for p in pool._pool]  # no public accessor
            res[f"p5_{method}_worker_rss"] = max(rss(pid) or 0 for pid in pids) or None
            res[f"p5_{method}_worker_uss"] = max(uss(pid) or 0 for pid in pids) or None
    # Parent memory per `queued` submitted, not yet finished, tasks.
    with ProcessPoolExecutor(2) as ex:
        ex.submit(tiny, 1).result()
        before = rss(os.getpid())
        fs = [ex.submit(tiny, i) for i in range(queued)]
        after = rss(os.getpid())
        for f in fs:
            f.result()
    res["p5_ppe_parent_rss_per_queued"] = (after - before) / queued if before and after else None
    res["p5_queued"] = queued


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1000,100000,1000000", help="P2 task counts (small,mid,large)")
    ap.add_argument("--p1", type=int, default=10000, help="P1 round trips")
    ap.add_argument("--p3-reps", type=int, default=7)
    ap.add_argument("--payload-mib", type=int, default=64)
    ap.add_argument("--p4-reps", type=int, default=5)
    ap.add_argument("--queued", type=int, default=100000, help="P5 tasks queued in the parent")
    ap.add_argument("--imap-max", type=int, default=100000,
                    help="largest task count for one-task-per-message runs (about 20k tasks/s)")
    ap.add_argument("--only", default="1,2,3,4,5", help="figures to measure")
    ap.add_argument("--idle", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.idle:
        print("ready", flush=True)
        sys.stdin.read()
        return
    jl = try_joblib()
    res = {
        "python": sys.version.split()[0],
        "executable": sys.executable,
        "joblib": getattr(jl, "__version__", "unknown") if jl else None,
        "start_method": mp.get_start_method(),
    }
    sizes = [int(s) for s in a.sizes.split(",") if s]
    only = set(a.only.split(","))
    if "1" in only:
        p1(res, a.p1)
    if "2" in only:
        p2(res, sizes, a.imap_max)
    if "3" in only:
        p3(res, a.p3_reps)
    if "4" in only:
        p4(res, a.payload_mib, a.p4_reps)
    if "5" in only:
        p5(res, a.queued)
    print(json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
