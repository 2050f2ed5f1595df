// expect: procpool: this type is not serializable
// An aggregate parameter with a std::mutex member. Fix: send only the data; keep the mutex out of the struct.
#include <procpool/procpool.hpp>

#include <mutex>

struct guarded {
    int value;
#ifdef FIXED
#else
    std::mutex lock;
#endif
};

int value_of(const guarded& g) { return g.value; }
PROCPOOL_TASK(value_of);

int main(int argc, char** argv) {
    procpool::serve_if_worker(argc, argv);
    procpool::pool pool{{.workers = 1}};
#ifdef FIXED
    guarded g{1};
#else
    guarded g{1, {}};
#endif
    auto f = pool.submit<value_of>(g);
    return f.get() == 1 ? 0 : 1;
}
