// expect: procpool: std::function is not serializable
// A task parameter of type std::function<void()>: code never crosses. Fix: pass data that selects the behaviour.
#include <procpool/procpool.hpp>

#include <functional>

#ifdef FIXED
void run_callback(int which) { (void)which; }
#else
void run_callback(std::function<void()> cb) { cb(); }
#endif
PROCPOOL_TASK(run_callback);

int main(int argc, char** argv) {
    procpool::serve_if_worker(argc, argv);
    procpool::pool pool{{.workers = 1}};
#ifdef FIXED
    pool.submit<run_callback>(0).get();
#else
    pool.submit<run_callback>(std::function<void()>([] {})).get();
#endif
    return 0;
}
