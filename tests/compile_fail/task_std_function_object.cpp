// expect: procpool: a callable object is not a registered task
// A std::function object. Fix: pool.submit<registered_fn>(1).
#include <procpool/procpool.hpp>

#include <functional>

int registered_fn(int x) { return x + 1; }
PROCPOOL_TASK(registered_fn);

int main(int argc, char** argv) {
    procpool::serve_if_worker(argc, argv);
    procpool::pool pool{{.workers = 1}};
#ifdef FIXED
    (void)pool.submit<registered_fn>(1).get();
#else
    std::function<int(int)> fn = registered_fn;
    pool.submit(fn, 1);
#endif
    return 0;
}
