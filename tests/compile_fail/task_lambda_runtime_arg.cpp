// expect: procpool: a callable object is not a registered task
// A captureless lambda passed as a run-time argument. Fix: a free function registered with PROCPOOL_TASK, then
// pool.submit<identity>(1).
#include <procpool/procpool.hpp>

int identity(int x) { return x; }
PROCPOOL_TASK(identity);

int main(int argc, char** argv) {
    procpool::serve_if_worker(argc, argv);
    procpool::pool pool{{.workers = 1}};
#ifdef FIXED
    (void)pool.submit<identity>(1).get();
#else
    pool.submit([](int x) { return x; }, 1);
#endif
    return 0;
}
