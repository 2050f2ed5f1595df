// expect: procpool: this type is not serializable
// A task parameter of type const std::mutex&: a mutex has no value to send. Fix: drop the parameter; lock
// inside the worker if needed.
#include <procpool/procpool.hpp>

#include <mutex>

int locked_answer(const std::mutex& m) { return (void)m, 42; }
PROCPOOL_TASK(locked_answer);

int main(int argc, char** argv) {
    procpool::serve_if_worker(argc, argv);
    procpool::pool pool{{.workers = 1}};
    std::mutex m;
    auto f = pool.submit<locked_answer>(m);
    return f.get() == 42 ? 0 : 1;
}
