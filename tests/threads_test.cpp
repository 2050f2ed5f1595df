// SPDX-License-Identifier: BSL-1.0
// tests/threads_test.cpp: one pool driven from several threads at once, under every start method: submit, get,
// cancel, wait_for, map, map_unordered, and a shutdown while others submit. The [threads] cases are what the
// ThreadSanitizer stage of scripts/test.sh runs (the pool's documented threading model: every member function may
// be called from any thread).
#include "catch.hpp"
#include "test_tasks.hpp"

#include <procpool/procpool.hpp>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

namespace threads_t {
int add3(int a, int b, int c) { return a + b + c; }
} // namespace threads_t
PROCPOOL_TASK(threads_t::add3);

namespace threads_t {
int sq(int x) { return x * x; }
} // namespace threads_t
PROCPOOL_TASK(threads_t::sq);

namespace {

using threads_t::add3;
using threads_t::sq;
using namespace std::chrono_literals;

procpool::pool_options threads_opts(procpool::start_method m) {
    procpool::pool_options o;
    o.workers = 2;
    o.start = m;
    // Under ThreadSanitizer its own thread is running: fork from a process with threads, knowingly (the workers
    // come from the template, forked while this process ran that thread only).
    o.on_threads = procpool::threaded_fork::warn;
    return o;
}

} // namespace

TEST_CASE("several threads drive one pool at once: submit, get, cancel, wait_for, map, map_unordered",
          "[threads][pool]") {
    auto method = GENERATE(from_range(ppt::all_methods));
    INFO("start method: " << ppt::name(method));
    procpool::pool pool(threads_opts(method));
    constexpr int threads = 4, rounds = 25;
    std::atomic<int> wrong{0}, results{0}, cancelled{0}, mapped{0};
    std::vector<std::thread> ts;
    for (int t = 0; t < threads; ++t)
        ts.emplace_back([&, t] {
            try {
                for (int i = 0; i < rounds; ++i) {
                    auto a = pool.submit<add3>(t, i, 1);
                    auto b = pool.submit<sq>(i);
                    if (b.cancel()) {
                        ++cancelled;
                        try {
                            b.get();
                            ++wrong; // a cancelled task has no value
                        } catch (const procpool::task_cancelled&) {
                        }
                    } else if (b.get() != i * i) {
                        ++wrong;
                    }
                    while (a.wait_for(1ms) != std::future_status::ready) {
                    }
                    if (a.get() != t + i + 1) ++wrong;
                    ++results;
                    if (i % 5 == 0) {
                        std::vector<int> in(20);
                        for (int k = 0; k < 20; ++k) in[static_cast<std::size_t>(k)] = k + t;
                        auto out = pool.map<sq>(in, 3);
                        for (int k = 0; k < 20; ++k)
                            if (out[static_cast<std::size_t>(k)] != (k + t) * (k + t)) ++wrong;
                        long sum = 0, want = 0;
                        for (int v : pool.map_unordered<sq>(in, 4)) sum += v;
                        for (int k : in) want += k * k;
                        if (sum != want) ++wrong;
                        ++mapped;
                    }
                }
            } catch (...) {
                ++wrong;
            }
        });
    for (auto& t : ts) t.join();
    CHECK(wrong == 0);
    CHECK(results == threads * rounds);
    CHECK(mapped == threads * 5);
    pool.shutdown();
}

TEST_CASE("threads submit while another shuts the pool down: every task has its result or pool_closed",
          "[threads][pool]") {
    auto method = GENERATE(from_range(ppt::all_methods));
    INFO("start method: " << ppt::name(method));
    procpool::pool pool(threads_opts(method));
    std::atomic<int> ok{0}, closed{0}, wrong{0};
    std::atomic<bool> go{false};
    std::vector<std::thread> ts;
    for (int t = 0; t < 3; ++t)
        ts.emplace_back([&, t] {
            while (!go.load()) std::this_thread::yield();
            for (int i = 0; i < 100; ++i) {
                try {
                    auto f = pool.submit<add3>(t, i, 0);
                    if (f.get() == t + i) ++ok;
                    else ++wrong;
                } catch (const procpool::pool_closed&) {
                    ++closed;
                } catch (...) {
                    ++wrong;
                }
            }
        });
    ts.emplace_back([&] {
        while (!go.load()) std::this_thread::yield();
        pool.shutdown();
    });
    go = true;
    for (auto& t : ts) t.join();
    CHECK(wrong == 0);
    CHECK(ok + closed == 300);
}
