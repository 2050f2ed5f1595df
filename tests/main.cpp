// SPDX-License-Identifier: BSL-1.0
// tests/main.cpp: spawned workers serve here; the parent runs Catch.
#define CATCH_CONFIG_RUNNER
#include "catch.hpp"

#include <procpool/procpool.hpp>

int main(int argc, char** argv) {
    procpool::serve_if_worker(argc, argv); // a spawned worker serves its pool and exits here
    return Catch::Session().run(argc, argv);
}
