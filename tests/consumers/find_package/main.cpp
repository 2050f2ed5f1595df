// SPDX-License-Identifier: BSL-1.0
// Consumer test: a program outside the procpool tree that uses an installed (or embedded) procpool.
// scripts/consumer-tests.sh builds it four ways and checks that it prints the expected version, which it does only
// after a pool of spawned workers (this executable, re-run) has run one task: the build links what a pool needs.
#include <procpool/procpool.hpp>

#include <cstdio>
#include <exception>

int square(int x) { return x * x; }
PROCPOOL_TASK(square);

#if defined(CONSUMER_SEPARATE)
int second_file_result(); // second.cpp: another file that uses a pool
#endif

int main(int argc, char** argv) {
    procpool::serve_if_worker(argc, argv); // a spawned worker serves here and exits
    try {
        procpool::pool pool{{.workers = 1, .start = procpool::start_method::spawn}};
        const int r = pool.submit<square>(7).get();
        if (r != 49) {
            std::printf("consumer: square(7) returned %d\n", r);
            return 1;
        }
#if defined(CONSUMER_SEPARATE)
        if (PROCPOOL_HEADER_ONLY || second_file_result() != 27) {
            std::printf("consumer: not in separate-compilation mode, or cube(3) in second.cpp failed\n");
            return 1;
        }
#endif
    } catch (const std::exception& e) {
        std::printf("consumer: the pool failed: %s\n", e.what());
        return 1;
    }
    std::printf("procpool %d.%d.%d\n", PROCPOOL_VERSION_MAJOR, PROCPOOL_VERSION_MINOR, PROCPOOL_VERSION_PATCH);
    return 0;
}
