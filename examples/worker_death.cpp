// SPDX-License-Identifier: BSL-1.0
// examples/worker_death.cpp: a worker that crashes fails only the task it was running (no BrokenProcessPool: the
// pool starts a replacement and every other task completes); a task that hangs is killed at its timeout; retries
// rerun a task whose worker died.
#include <procpool/procpool.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

// Stands in for a call into a library that sometimes crashes or hangs.
int parse(int record) {
    if (record == 3) std::abort();                                           // the worker process dies
    if (record == 5) std::this_thread::sleep_for(std::chrono::seconds(60)); // hangs
    return record * 10;
}
PROCPOOL_TASK(parse);

// Crashes the first time it runs (leaving `marker` behind), succeeds the next time: a transient failure.
int flaky(std::string marker) {
    if (!std::filesystem::exists(marker)) {
        std::ofstream(marker) << "crashed once\n";
        std::abort();
    }
    return 7;
}
PROCPOOL_TASK(flaky);

int main(int argc, char** argv) {
    using namespace std::chrono_literals;
    procpool::serve_if_worker(argc, argv);

    int lost = 0;
    procpool::pool pool{{.workers = 2,
                         .max_retries = 1, // rerun a task once if its worker dies under it (off by default)
                         .on_worker_lost = [&](const procpool::worker_lost& w) {
                             ++lost;
                             std::printf("  on_worker_lost: %s\n", w.reason.c_str());
                         }}};

    std::vector<procpool::future<int>> results;
    for (int record = 0; record < 8; ++record)
        results.push_back(record == 5 ? pool.submit_with<parse>({.timeout = 500ms}, record) // per-task limit
                                      : pool.submit<parse>(record));
    for (int record = 0; record < 8; ++record) {
        try {
            std::printf("record %d: %d\n", record, results[record].get());
        } catch (const procpool::worker_died& e) { // exit code or signal, pid and task name
            std::printf("record %d: worker_died: %s\n", record, e.what());
        } catch (const procpool::task_timeout& e) { // the worker was killed and replaced
            std::printf("record %d: task_timeout: %s\n", record, e.what());
        }
    }

    auto marker = std::filesystem::temp_directory_path() /
                  ("procpool-flaky-" + std::to_string(pool.worker_pids().front()));
    std::printf("flaky, retried once: %d\n", pool.submit<flaky>(marker.string()).get());
    std::filesystem::remove(marker);

    std::printf("workers lost: %d; the pool still has %zu workers\n", lost, pool.size());
}
