// expect: procpool: a pointer cannot cross a process boundary
// A task parameter of type int*: the address means nothing in the worker. Fix: take int (or a std::vector<int>).
#include <procpool/procpool.hpp>

#ifdef FIXED
int deref(int p) { return p; }
#else
int deref(int* p) { return *p; }
#endif
PROCPOOL_TASK(deref);

int main(int argc, char** argv) {
    procpool::serve_if_worker(argc, argv);
    procpool::pool pool{{.workers = 1}};
    int x = 1;
#ifdef FIXED
    auto f = pool.submit<deref>(x);
#else
    auto f = pool.submit<deref>(&x);
#endif
    return f.get() == 1 ? 0 : 1;
}
