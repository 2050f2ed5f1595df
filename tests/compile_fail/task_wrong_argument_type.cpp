// expect: procpool: an argument cannot be converted to the task's parameter type
// takes_int takes an int; a std::string is given. Fix: pool.submit<takes_int>(1).
#include <procpool/procpool.hpp>

#include <string>

int takes_int(int x) { return x; }
PROCPOOL_TASK(takes_int);

int main(int argc, char** argv) {
    procpool::serve_if_worker(argc, argv);
    procpool::pool pool{{.workers = 1}};
#ifdef FIXED
    auto f = pool.submit<takes_int>(1);
#else
    auto f = pool.submit<takes_int>(std::string("x"));
#endif
    return f.get() == 1 ? 0 : 1;
}
