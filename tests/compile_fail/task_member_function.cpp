// expect: procpool: a member function is not a registered task
// A pointer to member function as the task. Fix: a free function taking the object's data, registered with
// PROCPOOL_TASK, e.g. pool.submit<scale>(counter{2}, 3).
#include <procpool/procpool.hpp>

struct counter {
    int factor;
    int scale(int x) const { return factor * x; }
};
#ifdef FIXED
int scale(counter c, int x) { return c.scale(x); }
PROCPOOL_TASK(scale);
#endif

int main(int argc, char** argv) {
    procpool::serve_if_worker(argc, argv);
    procpool::pool pool{{.workers = 1}};
#ifdef FIXED
    auto f = pool.submit<scale>(counter{2}, 3);
#else
    auto f = pool.submit<&counter::scale>(counter{2}, 3);
#endif
    return f.get() == 6 ? 0 : 1;
}
