// expect: procpool: a callable object is not a registered task
// A capturing lambda: its captures live in this process. Fix: pass the captured value as an argument of a
// registered task, pool.submit<add>(1, y).
#include <procpool/procpool.hpp>

int main(int argc, char** argv) {
    procpool::serve_if_worker(argc, argv);
    procpool::pool pool{{.workers = 1}};
    int y = 41;
    pool.submit([y](int x) { return x + y; }, 1);
    return 0;
}
