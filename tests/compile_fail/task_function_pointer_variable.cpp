// expect: procpool: a callable object is not a registered task
// A function pointer variable, even to a registered task: only the name crosses. Fix: pool.submit<registered_fn>(1).
#include <procpool/procpool.hpp>

int registered_fn(int x) { return x + 1; }
PROCPOOL_TASK(registered_fn);

int main(int argc, char** argv) {
    procpool::serve_if_worker(argc, argv);
    procpool::pool pool{{.workers = 1}};
#ifdef FIXED
    (void)pool.submit<registered_fn>(1).get();
#else
    auto fp = &registered_fn;
    pool.submit(fp, 1);
#endif
    return 0;
}
