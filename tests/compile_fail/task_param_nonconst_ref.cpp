// expect: procpool: a task parameter cannot be a non-const reference
// void f(int&): the worker's change would never reach the caller. Fix: int increment(int x) { return x + 1; }
#include <procpool/procpool.hpp>

void increment(int& x) { ++x; }
PROCPOOL_TASK(increment);

int main(int argc, char** argv) {
    procpool::serve_if_worker(argc, argv);
    procpool::pool pool{{.workers = 1}};
    int x = 1;
    pool.submit<increment>(x).get();
    return 0;
}
