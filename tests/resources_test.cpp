// SPDX-License-Identifier: BSL-1.0
// tests/resources_test.cpp (Linux: reads /proc): pools leave no descriptors and no processes behind; nested
// pools work; a forked worker cannot use its parent's pool object.
#include "catch.hpp"
#include "test_tasks.hpp"

#include <procpool/procpool.hpp>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <numeric>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace rs_t {

int square(int x) { return x * x; }
long pid_of() { return ppt::pid(); }

} // namespace rs_t

// Registered before the tasks below, which submit them to pools of their own.
PROCPOOL_TASK(rs_t::square);
PROCPOOL_TASK(rs_t::pid_of);

namespace rs_t {

/// Runs a pool of its own inside the worker and sums squares through it.
int nested_sum(int method, int n) {
    procpool::pool inner{{.workers = 2, .start = static_cast<procpool::start_method>(method)}};
    std::vector<int> in(static_cast<std::size_t>(n));
    std::iota(in.begin(), in.end(), 1);
    auto squares = inner.map<square>(in);
    int sum = std::accumulate(squares.begin(), squares.end(), 0);
    // The inner pool's workers are not the worker itself.
    long inner_pid = inner.submit<pid_of>().get();
    if (static_cast<procpool::start_method>(method) != procpool::start_method::in_process && inner_pid == ppt::pid())
        return -1;
    return sum;
}

// A pool constructed before a fork pool: its forked workers hold a copy of this pointer and of the object.
procpool::pool* earlier_pool = nullptr;

int use_earlier_pool(int x) {
    if (!earlier_pool) return -1;
    return earlier_pool->submit<square>(x).get(); // must throw: the pool belongs to the parent
}

#if PROCPOOL_POSIX
/// Descriptors of another process (a worker), or -1.
int fds_of(long pid) {
    auto dir = "/proc/" + std::to_string(pid) + "/fd";
    int n = 0;
    std::error_code ec;
    for (auto it = std::filesystem::directory_iterator(dir, ec); !ec && it != std::filesystem::directory_iterator();
         it.increment(ec))
        ++n;
    return ec ? -1 : n;
}
#endif

struct snapshot {
    int fds = ppt::count_fds();
    std::vector<long> descendants = ppt::descendant_pids();
};

} // namespace rs_t

PROCPOOL_TASK(rs_t::nested_sum);
PROCPOOL_TASK(rs_t::use_earlier_pool);

using namespace rs_t;
using procpool::start_method;

TEST_CASE("pools in sequence leave no descriptors and no processes behind", "[resources]") {
    auto method = GENERATE(from_range(ppt::all_methods));
    INFO("start method: " << ppt::name(method));
    snapshot before;
    REQUIRE(before.fds > 0);
    int peak_fds = 0;
    std::size_t peak_processes = 0;
    constexpr int pools = 20;
    for (int i = 0; i < pools; ++i) {
        // Mostly one worker (spawning is slow under sanitizers), every fifth pool two.
        procpool::pool p{{.workers = i % 5 == 0 ? 2u : 1u, .start = method}};
        REQUIRE(p.submit<square>(i).get() == i * i);
        if (i % 2) REQUIRE(p.map<square>(std::vector<int>{1, 2, 3}, 1) == std::vector<int>{1, 4, 9});
        else REQUIRE(p.submit<square>(i + 1).get() == (i + 1) * (i + 1)); // every worker busy once in a while
        peak_fds = std::max(peak_fds, ppt::count_fds());
        peak_processes = std::max(peak_processes, ppt::descendant_pids().size());
        if (i % 3 == 0) p.shutdown(); // explicitly, or through the destructor
    }
    snapshot after;
    std::printf("%d %s pools in sequence: descriptors before %d, while running up to %d, after %d; processes "
                "(descendants) before %zu, while running up to %zu, after %zu\n",
                pools, ppt::name(method), before.fds, peak_fds, after.fds, before.descendants.size(), peak_processes,
                after.descendants.size());
    std::fflush(stdout);
    CHECK(after.fds == before.fds);
    CHECK(after.descendants == before.descendants);
    if (method == start_method::in_process) CHECK(peak_processes == before.descendants.size());
    else CHECK(peak_processes > before.descendants.size()); // the counter does see workers
}

TEST_CASE("several pools at once, then none: nothing left behind", "[resources]") {
    // Windows has no fork: there all three pools spawn, and the per-worker descriptor checks (POSIX) are left out.
    constexpr start_method forked = PROCPOOL_POSIX ? start_method::fork : start_method::spawn;
    snapshot before;
    int both_fds = 0;
    std::size_t both_processes = 0;
    {
        procpool::pool a{{.workers = 2, .start = forked}};
        procpool::pool b{{.workers = 2, .start = start_method::spawn}};
        procpool::pool c{{.workers = 1, .start = forked}};
        for (int i = 0; i < 5; ++i) {
            CHECK(a.submit<square>(i).get() == i * i);
            CHECK(b.submit<square>(i).get() == i * i);
            CHECK(c.submit<square>(i).get() == i * i);
        }
        both_fds = ppt::count_fds();
        both_processes = ppt::descendant_pids().size();
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
        // Spawned workers get only stdin, stdout, stderr, their channel and their lifeline (posix_spawn closes the
        // rest where the C library can: glibc 2.34's closefrom action).
        for (long pid : b.worker_pids()) CHECK(fds_of(pid) == 5);
#endif
#if PROCPOOL_POSIX
        // A fork pool's workers do not hold the channels of the parent's other pools (or its template could keep
        // an earlier pool's workers from seeing end of stream): c's workers were forked after a and b existed.
        for (long pid : c.worker_pids()) CHECK(fds_of(pid) == before.fds + 1);
#endif
        a.shutdown(); // the others keep working after one is shut down
        CHECK(b.submit<square>(9).get() == 81);
        CHECK(c.submit<square>(9).get() == 81);
    }
    snapshot after;
    std::printf("three pools at once (%s, spawn, %s): descriptors before %d, while open %d, after %d; processes "
                "before %zu, while open %zu, after %zu\n",
                ppt::name(forked), ppt::name(forked), before.fds, both_fds, after.fds, before.descendants.size(),
                both_processes, after.descendants.size());
    std::fflush(stdout);
    // fork: a template and 2 workers, spawn: 2 workers, fork: a template and 1 worker (Windows: 2 + 2 + 1 workers)
    CHECK(both_processes == before.descendants.size() + (forked == start_method::fork ? 7 : 5));
    CHECK(after.fds == before.fds);
    CHECK(after.descendants == before.descendants);
}

TEST_CASE("recycling and cancelled work leave nothing behind", "[resources]") {
    auto method = GENERATE(from_range(ppt::process_methods));
    INFO("start method: " << ppt::name(method));
    snapshot before;
    {
        procpool::pool p{{.workers = 2, .start = method, .max_tasks_per_worker = 1}};
        for (int i = 0; i < 6; ++i) CHECK(p.submit<square>(i).get() == i * i);
        std::vector<procpool::future<int>> fs;
        for (int i = 0; i < 6; ++i) fs.push_back(p.submit<square>(i));
        p.shutdown(procpool::shutdown_mode::cancel_pending);
    }
    snapshot after;
    std::printf("%s pool, every worker recycled after one task, 6 tasks run and 6 cancelled: descriptors before %d, "
                "after %d; processes before %zu, after %zu\n",
                ppt::name(method), before.fds, after.fds, before.descendants.size(), after.descendants.size());
    std::fflush(stdout);
    CHECK(after.fds == before.fds);
    CHECK(after.descendants == before.descendants);
}

TEST_CASE("a task can run a pool of its own (nested pools)", "[resources][nested]") {
    auto outer = GENERATE(from_range(ppt::process_methods));
    auto inner = GENERATE(from_range(ppt::all_methods));
    INFO("outer " << ppt::name(outer) << ", inner " << ppt::name(inner));
    snapshot before;
    {
        procpool::pool p{{.workers = 1, .start = outer}};
        CHECK(p.submit<nested_sum>(static_cast<int>(inner), 10).get() == 385);
        CHECK(p.map<nested_sum>(std::vector<std::tuple<int, int>>{{static_cast<int>(inner), 3}}) ==
              std::vector<int>{14});
    }
    snapshot after;
    CHECK(after.fds == before.fds);
    CHECK(after.descendants == before.descendants);
}

TEST_CASE("a forked worker cannot use its parent's pool object", "[resources][fork][posix]") {
    // The earlier pool exists before the fork pool is constructed, so the fork workers hold a copy of it (and of
    // the pointer). Using that copy must fail clearly instead of writing to channels it does not own.
    procpool::pool earlier{{.workers = 1, .start = start_method::spawn}};
    earlier_pool = &earlier;
    struct reset {
        ~reset() { earlier_pool = nullptr; }
    } reset_pointer;
    procpool::pool p{{.workers = 1, .start = start_method::fork}};
    try {
        p.submit<use_earlier_pool>(3).get();
        FAIL("a forked worker used its parent's pool");
    } catch (const procpool::remote_error& e) {
        FAIL("a procpool::error should come back as procpool::error: " << e.what());
    } catch (const procpool::error& e) {
        CHECK_THAT(std::string(e.what()), ppt::has_substring("belongs to process " + std::to_string(ppt::pid())));
    }
    // Both pools are unharmed.
    CHECK(earlier.submit<square>(4).get() == 16);
    CHECK(p.submit<square>(5).get() == 25);
    // In the parent, the pointer is the pool itself and works.
    CHECK(use_earlier_pool(6) == 36);
    // A spawned worker starts from static initialization: the pointer is null there.
    procpool::pool s{{.workers = 1, .start = start_method::spawn}};
    CHECK(s.submit<use_earlier_pool>(3).get() == -1);
}
