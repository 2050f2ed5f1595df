// SPDX-License-Identifier: BSL-1.0
// tests/main.cpp: spawned workers serve here; the parent runs Catch.
#define CATCH_CONFIG_RUNNER
#include "catch.hpp"

#include <procpool/procpool.hpp>

#include <cstdlib>

// The missing-guard test starts workers with this variable set: they then behave like a program whose main()
// constructs a pool without calling serve_if_worker first, which procpool must detect.
static int main_without_guard() {
    procpool::pool p{{.workers = 1, .start = procpool::start_method::spawn}};
    return 0;
}

int main(int argc, char** argv) {
    if (std::getenv("PROCPOOL_TEST_MAIN_WITHOUT_GUARD")) return main_without_guard();
    procpool::serve_if_worker(argc, argv); // a spawned worker serves its pool and exits here
    return Catch::Session().run(argc, argv);
}
