// expect: procpool: not a registered task
// A lambda given as the task template argument. Fix: a free function registered with PROCPOOL_TASK, then
// pool.submit<identity>(1).
#include <procpool/procpool.hpp>

int main(int argc, char** argv) {
    procpool::serve_if_worker(argc, argv);
    procpool::pool pool{{.workers = 1}};
    auto f = pool.submit<[](int x) { return x; }>(1);
    return f.get() == 1 ? 0 : 1;
}
