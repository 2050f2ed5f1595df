// SPDX-License-Identifier: BSL-1.0
// examples/quickstart.cpp: register a task, run it in worker processes, get results and errors back.
#include <procpool/procpool.hpp>

#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <vector>

struct point { // an aggregate: serialized field by field, nothing to write
    double x, y;
};

double norm(point p) { return std::hypot(p.x, p.y); }
PROCPOOL_TASK(norm); // stable name "norm": only the name and the encoded point cross the process boundary

double checked_sqrt(double v) {
    if (v < 0) throw std::domain_error("negative input: " + std::to_string(v));
    return std::sqrt(v);
}
PROCPOOL_TASK(checked_sqrt);

int main(int argc, char** argv) {
    procpool::serve_if_worker(argc, argv); // a spawned worker serves here and exits; the parent goes on

    procpool::pool pool{{.workers = 2, .start = procpool::start_method::spawn}};

    procpool::future<double> f = pool.submit<norm>(point{3, 4});
    std::printf("norm({3, 4}) = %g\n", f.get());

    std::vector<point> points;
    for (int i = 0; i < 8; ++i) points.push_back({double(i), double(i)});
    std::printf("map:");
    for (double v : pool.map<norm>(points)) std::printf(" %.2f", v);
    std::printf("\n");

    try {
        pool.submit<checked_sqrt>(-1.0).get();
    } catch (const std::domain_error& e) { // rethrown as its own type in the parent
        std::printf("a worker threw std::domain_error: %s\n", e.what());
    }

    // pool.submit<[](int x) { return x; }>(1);  // does not compile: "procpool: not a registered task..."
    return 0;
}
