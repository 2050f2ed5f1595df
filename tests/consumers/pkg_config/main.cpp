// SPDX-License-Identifier: BSL-1.0
// Consumer test: a program outside the procpool tree that uses an installed (or embedded) procpool.
// scripts/consumer-tests.sh builds it four ways and checks that it prints the expected version.
#include <procpool/procpool.hpp>

#include <cstdio>
#include <string_view>

int square(int x) { return x * x; }
PROCPOOL_TASK(square);

int main(int argc, char** argv) {
    procpool::serve_if_worker(argc, argv); // a spawned worker serves here and exits
    bool registered = false;
    for (const auto& name : procpool::registered_task_names()) registered = registered || name == "square";
    if (!registered) {
        std::puts("consumer: task 'square' is not registered");
        return 1;
    }
    std::printf("procpool %d.%d.%d\n", PROCPOOL_VERSION_MAJOR, PROCPOOL_VERSION_MINOR, PROCPOOL_VERSION_PATCH);
    return 0;
}
