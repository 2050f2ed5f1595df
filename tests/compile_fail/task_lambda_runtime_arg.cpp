// expect: procpool: a callable object is not a registered task
// A captureless lambda passed as a run-time argument. Fix: a free function registered with PROCPOOL_TASK, then
// pool.submit<identity>(1).
#include <procpool/procpool.hpp>

int main(int argc, char** argv) {
    procpool::serve_if_worker(argc, argv);
    procpool::pool pool{{.workers = 1}};
    pool.submit([](int x) { return x; }, 1);
    return 0;
}
