// expect: procpool: a callable object is not a registered task
// A capturing lambda: its captures live in this process. Fix: pass the captured value as an argument of a
// registered task, pool.submit<add>(1, y).
#include <procpool/procpool.hpp>

int add(int x, int y) { return x + y; }
PROCPOOL_TASK(add);

int main(int argc, char** argv) {
    procpool::serve_if_worker(argc, argv);
    procpool::pool pool{{.workers = 1}};
    int y = 41;
#ifdef FIXED
    (void)pool.submit<add>(1, y).get();
#else
    pool.submit([y](int x) { return x + y; }, 1);
#endif
    return 0;
}
