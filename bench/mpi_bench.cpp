// SPDX-License-Identifier: BSL-1.0
// bench/mpi_bench.cpp: procpool over MPI (procpool/mpi.hpp) against the two hops a task makes: a raw MPI ping-pong
// and procpool's local round trip, measured in the same run. bench/mpi_bench.sh runs it next to mpi4py.futures:
//   mpirun -n 3 <build>/bench/procpool_mpi_bench [--quick]
// Prints one "name value unit" line per figure (mpi_bench.sh makes the table).
#include <procpool/mpi.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

static int tiny(int x) { return x + 1; }
PROCPOOL_TASK(tiny);
static std::uint64_t nbytes(std::vector<std::uint8_t> b) { return b.size(); }
PROCPOOL_TASK(nbytes);

using clk = std::chrono::steady_clock;
static double us_since(clk::time_point t) { return std::chrono::duration<double, std::micro>(clk::now() - t).count(); }

static double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

// Raw MPI between ranks 0 and 1, before the pool: 1-byte ping-pong (half of it is a hop), and 64 MiB one way.
static void raw_mpi(int rank, int n, std::size_t big) {
    std::vector<char> buf(big);
    char b = 0;
    if (rank == 0) {
        std::vector<double> rt;
        for (int i = 0; i < n; ++i) {
            auto t = clk::now();
            MPI_Send(&b, 1, MPI_BYTE, 1, 1, MPI_COMM_WORLD);
            MPI_Recv(&b, 1, MPI_BYTE, 1, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            rt.push_back(us_since(t));
        }
        std::printf("raw_pingpong_us %.2f\n", median(rt));
        double best = 1e9;
        for (int i = 0; i < 3; ++i) {
            auto t = clk::now();
            MPI_Send(buf.data(), static_cast<int>(big), MPI_BYTE, 1, 2, MPI_COMM_WORLD);
            MPI_Recv(&b, 1, MPI_BYTE, 1, 2, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            best = std::min(best, us_since(t));
        }
        std::printf("raw_64mib_gbs %.3f\n", static_cast<double>(big) / best / 1e3);
    } else if (rank == 1) {
        for (int i = 0; i < n; ++i) {
            MPI_Recv(&b, 1, MPI_BYTE, 0, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            MPI_Send(&b, 1, MPI_BYTE, 0, 1, MPI_COMM_WORLD);
        }
        for (int i = 0; i < 3; ++i) {
            MPI_Recv(buf.data(), static_cast<int>(big), MPI_BYTE, 0, 2, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            MPI_Send(&b, 1, MPI_BYTE, 0, 2, MPI_COMM_WORLD);
        }
    }
}

static double round_trip(procpool::pool& p, int n) {
    for (int i = 0; i < 50; ++i) (void)p.submit<tiny>(i).get();
    std::vector<double> rt;
    for (int i = 0; i < n; ++i) {
        auto t = clk::now();
        (void)p.submit<tiny>(i).get();
        rt.push_back(us_since(t));
    }
    return median(rt);
}

int main(int argc, char** argv) {
    procpool::serve_if_worker(argc, argv); // a local worker (of rank 0's local pool or of a node agent)
    int provided = 0;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_SERIALIZED, &provided);
    const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
    const std::size_t big = std::size_t{64} << 20;
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    raw_mpi(rank, quick ? 200 : 2000, big);
    procpool::mpi::serve_if_worker_rank(argc, argv); // ranks 1.. serve from here on, and exit

    const int n = quick ? 200 : 2000;
    {
        procpool::pool local{{.workers = 1}};
        std::printf("local_round_trip_us %.2f\n", round_trip(local, n));
    }
    auto pool = procpool::mpi::make_pool({.node = {.workers = 1}}); // 2 agents x 1 worker, as mpi4py's 2 workers
    std::printf("mpi_round_trip_us %.2f\n", round_trip(pool, n));

    const int tasks = quick ? 5000 : 50000;
    double best = 0;
    for (int rep = 0; rep < 3; ++rep) {
        auto t = clk::now();
        std::vector<procpool::future<int>> fs;
        fs.reserve(tasks);
        for (int i = 0; i < tasks; ++i) fs.push_back(pool.submit<tiny>(i));
        for (auto& f : fs) (void)f.get();
        best = std::max(best, tasks / (us_since(t) / 1e6));
    }
    std::printf("submit_each_per_s %.0f\n", best);

    const int items = quick ? 200000 : 2000000;
    std::vector<int> xs(items, 1);
    best = 0;
    for (int rep = 0; rep < 3; ++rep) {
        auto t = clk::now();
        auto out = pool.map<tiny>(xs, 1000);
        best = std::max(best, items / (us_since(t) / 1e6));
    }
    std::printf("map_chunks1000_per_s %.0f\n", best);

    std::vector<std::uint8_t> arg(big, 7);
    best = 1e18;
    for (int rep = 0; rep < 3; ++rep) {
        auto t = clk::now();
        (void)pool.submit<nbytes>(arg).get();
        best = std::min(best, us_since(t));
    }
    std::printf("arg_64mib_gbs %.3f\n", static_cast<double>(big) / best / 1e3);
    pool.shutdown();
    procpool::mpi::finalize();
    MPI_Finalize();
    return 0;
}
