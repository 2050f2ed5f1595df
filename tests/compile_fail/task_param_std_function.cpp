// expect: procpool: std::function is not serializable
// A task parameter of type std::function<void()>: code never crosses. Fix: pass data that selects the behaviour.
#include <procpool/procpool.hpp>

#include <functional>

void run_callback(std::function<void()> cb) { cb(); }
PROCPOOL_TASK(run_callback);

int main(int argc, char** argv) {
    procpool::serve_if_worker(argc, argv);
    procpool::pool pool{{.workers = 1}};
    pool.submit<run_callback>(std::function<void()>([] {})).get();
    return 0;
}
