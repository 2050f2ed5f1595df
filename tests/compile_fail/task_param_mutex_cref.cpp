// expect: procpool: this type is not serializable
// A task parameter of type const std::mutex&: a mutex has no value to send. Fix: drop the parameter; lock
// inside the worker if needed.
#include <procpool/procpool.hpp>

#include <mutex>

#ifdef FIXED
int locked_answer() {
    static std::mutex m; // the worker's own
    std::lock_guard lock(m);
    return 42;
}
#else
int locked_answer(const std::mutex& m) { return (void)m, 42; }
#endif
PROCPOOL_TASK(locked_answer);

int main(int argc, char** argv) {
    procpool::serve_if_worker(argc, argv);
    procpool::pool pool{{.workers = 1}};
#ifdef FIXED
    auto f = pool.submit<locked_answer>();
#else
    std::mutex m;
    auto f = pool.submit<locked_answer>(m);
#endif
    return f.get() == 42 ? 0 : 1;
}
