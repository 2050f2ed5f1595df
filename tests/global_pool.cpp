// SPDX-License-Identifier: BSL-1.0
// tests/global_pool.cpp: one pool for the program's life, held in a namespace-scope static and left to static
// destruction after main returns (issue 12, defect 11). Run by ctest once per start method and holder:
//   procpool_global_pool <spawn|fork|forkserver|in_process> <unique_ptr|optional> [fork-child]
// With fork-child, the program also fork()s a child that exit()s while holding its copy of the pool: the child's
// static destructors run, and must neither crash nor touch the parent's workers. The exit status is the verdict:
// 0, and "global pool: ok" printed by the last static destructor to run (an object constructed before the pool).
#include <procpool/procpool.hpp>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string>

#if PROCPOOL_POSIX
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#endif

int triple(int x) { return 3 * x; }
PROCPOOL_TASK(triple);

namespace {

// Destroyed after the pool (constructed before it): says that the pool's destruction returned.
struct last_word {
    bool armed = false;
    ~last_word() {
        if (armed) std::printf("global pool: ok\n");
    }
} last;

std::unique_ptr<procpool::pool> by_pointer;
std::optional<procpool::pool> by_value;

procpool::pool& the_pool() { return by_pointer ? *by_pointer : *by_value; }

} // namespace

int main(int argc, char** argv) {
    procpool::serve_if_worker(argc, argv);
    if (argc < 3) {
        std::fprintf(stderr, "usage: %s <start method> <unique_ptr|optional> [fork-child]\n", argv[0]);
        return 2;
    }
    const std::string m = argv[1];
    procpool::pool_options o;
    o.workers = 2;
    o.start = m == "fork"         ? procpool::start_method::fork
              : m == "forkserver" ? procpool::start_method::forkserver
              : m == "in_process" ? procpool::start_method::in_process
                                  : procpool::start_method::spawn;
    if (std::strcmp(argv[2], "optional") == 0) by_value.emplace(o);
    else by_pointer = std::make_unique<procpool::pool>(o);
    if (the_pool().submit<triple>(14).get() != 42) return 3;
#if PROCPOOL_POSIX
    if (argc > 3 && std::strcmp(argv[3], "fork-child") == 0) {
        std::fflush(nullptr);
        pid_t child = ::fork();
        if (child == 0) std::exit(0); // runs the child's static destructors, the pool's copy among them
        int st = 0;
        if (child < 0 || ::waitpid(child, &st, 0) != child) return 4;
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            std::fprintf(stderr, "the forked child did not exit cleanly (status %d)\n", st);
            return 5;
        }
        // The parent's workers are untouched: the pool still works.
        if (the_pool().submit<triple>(5).get() != 15) return 6;
    }
#endif
    last.armed = true;
    return 0; // the pool is destroyed with the other statics, after main
}
