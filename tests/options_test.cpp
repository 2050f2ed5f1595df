// SPDX-License-Identifier: BSL-1.0
// tests/options_test.cpp: pool_options (options.hpp): the pool's default task timeout under its name `timeout` and
// under its deprecated spelling `task_timeout`, and which one wins when both are set.
#include "catch.hpp"
#include "test_tasks.hpp"

#include <procpool/procpool.hpp>

#include <chrono>
#include <string>
#include <thread>

namespace opt_t {
// Sleeps `ms`, then answers: a limit that does not apply makes the test fail after the nap instead of hang.
int nap(int ms) {
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    return ms;
}
} // namespace opt_t
PROCPOOL_TASK(opt_t::nap);

namespace opt_t {
constexpr int long_nap_ms = 60000;

/// Runs a long nap in a pool made with `o` and returns the task_timeout's what() ("" if it did not time out).
std::string timeout_message(const procpool::pool_options& o) {
    procpool::pool p{o}; // a copy of the options: copying them must not warn of the deprecated member (-Werror)
    auto f = p.submit<nap>(long_nap_ms);
    try {
        (void)f.get();
    } catch (const procpool::task_timeout& e) {
        CHECK(p.submit<nap>(0).get() == 0); // the worker was replaced
        return e.what();
    }
    return "";
}
} // namespace opt_t

using namespace std::chrono_literals;

TEST_CASE("pool_options: timeout limits each task of the pool", "[options][timeout]") {
    const procpool::pool_options o{.workers = 1, .start_timeout = 60s, .timeout = 100ms, .max_retries = 0};
    CHECK_THAT(opt_t::timeout_message(o), ppt::has_substring("exceeded its timeout of 100 ms"));
}

// The old spelling keeps compiling, in the same place among the designated initializers, and keeps working. The
// warning it gives is itself checked by tests/compile_fail/options_deprecated_task_timeout.cpp.
#if defined(__GNUC__) || defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#endif

TEST_CASE("pool_options: the deprecated task_timeout still limits each task", "[options][timeout]") {
    const procpool::pool_options o{.workers = 1, .start_timeout = 60s, .task_timeout = 100ms, .max_retries = 0};
    CHECK_THAT(opt_t::timeout_message(o), ppt::has_substring("exceeded its timeout of 100 ms"));
}

TEST_CASE("pool_options: with timeout and the deprecated task_timeout both set, timeout wins", "[options][timeout]") {
    SECTION("the shorter one is timeout") {
        const procpool::pool_options o{.workers = 1, .timeout = 100ms, .task_timeout = 200ms};
        CHECK_THAT(opt_t::timeout_message(o), ppt::has_substring("exceeded its timeout of 100 ms"));
    }
    SECTION("the shorter one is task_timeout") {
        const procpool::pool_options o{.workers = 1, .timeout = 200ms, .task_timeout = 100ms};
        CHECK_THAT(opt_t::timeout_message(o), ppt::has_substring("exceeded its timeout of 200 ms"));
    }
    SECTION("a per-task timeout still overrides both") {
        procpool::pool p{{.workers = 1, .timeout = 200ms, .task_timeout = 300ms}};
        auto f = p.submit_with<opt_t::nap>({.timeout = 100ms}, opt_t::long_nap_ms);
        CHECK_THROWS_WITH(f.get(), Catch::Matchers::Contains("exceeded its timeout of 100 ms"));
    }
}

#if defined(__GNUC__) || defined(__clang__)
#pragma GCC diagnostic pop
#endif
