// SPDX-License-Identifier: BSL-1.0
// examples/worker_lifecycle.cpp: initializer, finalizer and recycling of workers.
#include <procpool/procpool.hpp>

#include <cstdio>
#include <set>
#include <string>

static std::string g_connection; // stands in for a per-worker resource: a database handle, a model...

void open_connection(std::string target) {
    g_connection = "connected to " + target;
    std::fprintf(stderr, "[worker %ld] initializer: %s\n", procpool::this_process_id(), g_connection.c_str());
}
PROCPOOL_TASK(open_connection);

void close_connection() {
    std::fprintf(stderr, "[worker %ld] finalizer: closing \"%s\"\n", procpool::this_process_id(),
                 g_connection.c_str());
    g_connection.clear();
}
PROCPOOL_TASK(close_connection);

long query(int) { return procpool::this_process_id(); }
PROCPOOL_TASK(query);

int main(int argc, char** argv) {
    procpool::serve_if_worker(argc, argv);

    procpool::pool pool{{.workers = 2,
                         .start = procpool::start_method::spawn,
                         .max_tasks_per_worker = 3, // a worker retires after 3 tasks; a fresh one replaces it
                         .initializer = procpool::call<open_connection>(std::string("db://example")),
                         .finalizer = procpool::call<close_connection>()}};
    std::set<long> pids;
    for (int i = 0; i < 12; ++i) pids.insert(pool.submit<query>(i).get());
    std::printf("12 tasks ran in %zu distinct worker processes (3 tasks each)\n", pids.size());
    pool.shutdown(); // the remaining workers run their finalizer, too
    return pids.size() == 4 ? 0 : 1;
}
