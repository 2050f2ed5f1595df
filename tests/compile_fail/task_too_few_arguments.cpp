// expect: procpool: wrong number of arguments for this task
// norm takes two arguments; none are given. Fix: pool.submit<norm>(3.0, 4.0).
#include <procpool/procpool.hpp>

#include <cmath>

double norm(double x, double y) { return std::hypot(x, y); }
PROCPOOL_TASK(norm);

int main(int argc, char** argv) {
    procpool::serve_if_worker(argc, argv);
    procpool::pool pool{{.workers = 1}};
#ifdef FIXED
    auto f = pool.submit<norm>(3.0, 4.0);
#else
    auto f = pool.submit<norm>();
#endif
    return f.get() == 5.0 ? 0 : 1;
}
