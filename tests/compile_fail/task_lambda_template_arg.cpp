// expect: procpool: not a registered task
// A lambda given as the task template argument. Fix: a free function registered with PROCPOOL_TASK, then
// pool.submit<identity>(1).
#include <procpool/procpool.hpp>

int identity(int x) { return x; }
PROCPOOL_TASK(identity);

int main(int argc, char** argv) {
    procpool::serve_if_worker(argc, argv);
    procpool::pool pool{{.workers = 1}};
#ifdef FIXED
    auto f = pool.submit<identity>(1);
#else
    auto f = pool.submit<[](int x) { return x; }>(1);
#endif
    return f.get() == 1 ? 0 : 1;
}
