// SPDX-License-Identifier: BSL-1.0
// examples/fork_vs_spawn.cpp: what workers see of the parent's run-time state under each start method.
#include <procpool/procpool.hpp>

#include <cstdio>
#include <string>
#include <utility>

std::string g_config = "static-init default"; // what a freshly started program has

std::string read_config() { return g_config; }
PROCPOOL_TASK(read_config);

int main(int argc, char** argv) {
    procpool::serve_if_worker(argc, argv);

    g_config = "set at run time by the parent";
    using procpool::start_method;
    for (auto [method, name] : {std::pair{start_method::fork, "fork"}, std::pair{start_method::forkserver, "forkserver"},
                                std::pair{start_method::spawn, "spawn"}, std::pair{start_method::in_process, "in_process"}}) {
        if (!procpool::is_available(method)) { // Windows: no fork, so neither fork nor forkserver
            std::printf("%-10s not available on this platform\n", name);
            continue;
        }
        procpool::pool pool{{.workers = 1, .start = method}};
        g_config = "changed after the pool started";
        std::printf("%-10s worker sees: \"%s\"\n", name, pool.submit<read_config>().get().c_str());
        g_config = "set at run time by the parent";
    }
    // fork:       a copy of the parent as it was when the pool was constructed (replacements too)
    // forkserver: forked by a server that was spawned fresh: static initialization only, like spawn
    // spawn:      a fresh process: static initialization only; pass run-time state as arguments
    // in_process: the caller itself, through the same encode/decode path (for debugging)
    return 0;
}
