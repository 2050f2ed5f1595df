// expect: procpool: a task parameter cannot be a non-const reference
// void f(int&): the worker's change would never reach the caller. Fix: int increment(int x) { return x + 1; }
#include <procpool/procpool.hpp>

#ifdef FIXED
int increment(int x) { return x + 1; }
#else
void increment(int& x) { ++x; }
#endif
PROCPOOL_TASK(increment);

int main(int argc, char** argv) {
    procpool::serve_if_worker(argc, argv);
    procpool::pool pool{{.workers = 1}};
    int x = 1;
#ifdef FIXED
    x = pool.submit<increment>(x).get();
#else
    pool.submit<increment>(x).get();
#endif
    return 0;
}
