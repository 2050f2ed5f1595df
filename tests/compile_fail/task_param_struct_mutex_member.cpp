// expect: procpool: this type is not serializable
// An aggregate parameter with a std::mutex member. Fix: send only the data; keep the mutex out of the struct.
#include <procpool/procpool.hpp>

#include <mutex>

struct guarded {
    int value;
    std::mutex lock;
};

int value_of(const guarded& g) { return g.value; }
PROCPOOL_TASK(value_of);

int main(int argc, char** argv) {
    procpool::serve_if_worker(argc, argv);
    procpool::pool pool{{.workers = 1}};
    guarded g{1, {}};
    auto f = pool.submit<value_of>(g);
    return f.get() == 1 ? 0 : 1;
}
