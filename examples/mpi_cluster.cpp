// SPDX-License-Identifier: BSL-1.0
// examples/mpi_cluster.cpp: the quickstart's task on a cluster. Built with procpool::mpi and run as
// `mpirun -n 3 ./example_mpi_cluster`, rank 0 owns the pool and ranks 1 and 2 are node agents, each running the
// tasks in its own worker processes. Built without MPI, or started on its own, the same source uses one machine.
#if __has_include(<mpi.h>)
#include <procpool/mpi.hpp>
#define EXAMPLE_HAVE_MPI 1
#else
#include <procpool/procpool.hpp>
#define EXAMPLE_HAVE_MPI 0
#endif

#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <vector>

struct point {
    double x, y;
};

double norm(point p) { return std::hypot(p.x, p.y); }
PROCPOOL_TASK(norm);

double checked_sqrt(double v) {
    if (v < 0) throw std::domain_error("negative input: " + std::to_string(v));
    return std::sqrt(v);
}
PROCPOOL_TASK(checked_sqrt);

// The same procpool::pool type either way: only its construction differs.
static procpool::pool make_pool() {
#if EXAMPLE_HAVE_MPI
    if (procpool::mpi::serving_ranks() > 0) {
        std::fprintf(stderr, "on %zu MPI node agents\n", procpool::mpi::serving_ranks());
        return procpool::mpi::make_pool({.node = {.workers = 2}}); // 2 worker processes per node
    }
#endif
    std::fprintf(stderr, "on one machine\n");
    return procpool::pool{{.workers = 2}};
}

int main(int argc, char** argv) {
#if EXAMPLE_HAVE_MPI
    procpool::mpi::serve_if_worker_rank(argc, argv); // node agents and their workers serve here, then exit
#else
    procpool::serve_if_worker(argc, argv);
#endif
    procpool::pool pool = make_pool();

    std::printf("norm({3, 4}) = %g\n", pool.submit<norm>(point{3, 4}).get());

    std::vector<point> points;
    for (int i = 0; i < 8; ++i) points.push_back({double(i), double(i)});
    std::printf("map:");
    for (double v : pool.map<norm>(points)) std::printf(" %.2f", v);
    std::printf("\n");

    try {
        pool.submit<checked_sqrt>(-1.0).get();
    } catch (const std::domain_error& e) { // rethrown as its own type, from whichever node ran it
        std::printf("a worker threw std::domain_error: %s\n", e.what());
    }
    return 0;
}
