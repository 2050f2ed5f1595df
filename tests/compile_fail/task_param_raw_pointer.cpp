// expect: procpool: a pointer cannot cross a process boundary
// A task parameter of type int*: the address means nothing in the worker. Fix: take int (or a std::vector<int>).
#include <procpool/procpool.hpp>

int deref(int* p) { return *p; }
PROCPOOL_TASK(deref);

int main(int argc, char** argv) {
    procpool::serve_if_worker(argc, argv);
    procpool::pool pool{{.workers = 1}};
    int x = 1;
    auto f = pool.submit<deref>(&x);
    return f.get() == 1 ? 0 : 1;
}
