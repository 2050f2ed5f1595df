// expect: is deprecated: use pool_options::timeout
// SPDX-License-Identifier: BSL-1.0
// pool_options::task_timeout, the old name of pool_options::timeout, still compiles (in its place among the designated
// initializers) but warns; the warning is made an error here so that the case fails on it. Were the old spelling
// removed, the first error would be another one and the case would fail. Fix: `.timeout = ...`.
#include <procpool/procpool.hpp>

#include <chrono>

#pragma GCC diagnostic error "-Wdeprecated-declarations"

int main(int argc, char** argv) {
    procpool::serve_if_worker(argc, argv);
#ifdef FIXED
    procpool::pool_options o{.workers = 1, .start_timeout = std::chrono::seconds(60),
                             .timeout = std::chrono::milliseconds(100), .max_retries = 0};
#else
    procpool::pool_options o{.workers = 1, .start_timeout = std::chrono::seconds(60),
                             .task_timeout = std::chrono::milliseconds(100), .max_retries = 0};
#endif
    procpool::pool_options copy = o; // copying the options never warns
    procpool::pool pool{copy};
    return static_cast<int>(pool.size()) - 1;
}
