// expect: procpool: not a registered task
// A free function that was never registered. Fix: PROCPOOL_TASK(unregistered); after its definition.
#include <procpool/procpool.hpp>

#ifdef FIXED
int unregistered(int x) { return x + 1; }
PROCPOOL_TASK(unregistered);
#else
int unregistered(int x) { return x + 1; }
#endif

int main(int argc, char** argv) {
    procpool::serve_if_worker(argc, argv);
    procpool::pool pool{{.workers = 1}};
    auto f = pool.submit<unregistered>(1);
    return f.get() == 2 ? 0 : 1;
}
