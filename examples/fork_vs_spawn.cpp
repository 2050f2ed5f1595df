// SPDX-License-Identifier: BSL-1.0
// examples/fork_vs_spawn.cpp: what workers see of the parent's run-time state under each start method.
#include <procpool/procpool.hpp>

#include <cstdio>
#include <string>

std::string g_config = "static-init default"; // what a freshly started program has

std::string read_config() { return g_config; }
PROCPOOL_TASK(read_config);

int main(int argc, char** argv) {
    procpool::serve_if_worker(argc, argv);

    g_config = "set at run time by the parent";
    for (auto method : {procpool::start_method::fork, procpool::start_method::spawn,
                        procpool::start_method::in_process}) {
        const char* name = method == procpool::start_method::fork    ? "fork"
                           : method == procpool::start_method::spawn ? "spawn"
                                                                     : "in_process";
#if PROCPOOL_WINDOWS
        if (method == procpool::start_method::fork) { // a pool would throw start_error: Windows has no fork()
            std::printf("%-10s not available on Windows (spawn and in_process only)\n", name);
            continue;
        }
#endif
        procpool::pool pool{{.workers = 1, .start = method}};
        g_config = "changed after the pool started";
        std::printf("%-10s worker sees: \"%s\"\n", name, pool.submit<read_config>().get().c_str());
        g_config = "set at run time by the parent";
    }
    // fork:       a copy of the parent as it was when the pool was constructed (replacements too)
    // spawn:      a fresh process: static initialization only; pass run-time state as arguments
    // in_process: the caller itself, through the same encode/decode path (for debugging)
    return 0;
}
