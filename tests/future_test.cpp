// SPDX-License-Identifier: BSL-1.0
// tests/future_test.cpp: waiting on many futures (as_completed, wait_any) across several pools and in-process
// futures, the index of each completed future, and done-callbacks (future::on_done).
#include "catch.hpp"
#include "test_tasks.hpp"

#include <procpool/procpool.hpp>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace future_t {

int twice(int x) { return 2 * x; }
int gated(std::string path, int value) { return ppt::wait_on_gate(path) == 'x' ? value : -value; }
int refuse(int x) {
    if (x < 0) throw std::invalid_argument("negative");
    return x;
}

} // namespace future_t

PROCPOOL_TASK(future_t::twice);
PROCPOOL_TASK(future_t::gated);
PROCPOOL_TASK(future_t::refuse);

using namespace future_t;

TEST_CASE("as_completed over two pools yields the fast result of the second before the blocked first",
          "[future][as_completed]") {
    // Issue 12, defect 5: only the first future's pool was driven, so B's result waited for A's task (here: forever,
    // since A's task is released only once B's result has been seen; the deadlock shape of "A's task waits on B").
    auto method = GENERATE(from_range(ppt::process_methods));
    INFO("start method: " << ppt::name(method));
    procpool::pool a{{.workers = 1, .start = method}};
    procpool::pool b{{.workers = 1, .start = method}};
    ppt::gate g; // after the pools: destroyed first, so a failure cannot leave a task blocked
    std::vector<procpool::future<int>> fs;
    fs.push_back(a.submit<gated>(g.path(), 1));
    fs.push_back(b.submit<twice>(21));
    std::vector<std::size_t> order;
    std::vector<int> values;
    procpool::as_completed completed(fs);
    for (auto it = completed.begin(); it != std::default_sentinel; ++it) {
        order.push_back(it.index());
        values.push_back(it->get());
        if (order.size() == 1) g.release(); // A's task finishes only after B's result was seen
    }
    CHECK(order == std::vector<std::size_t>{1, 0});
    CHECK(values == std::vector<int>{42, 1});
}

TEST_CASE("wait_any over two pools returns the ready future of either pool", "[future][wait_any]") {
    procpool::pool a{{.workers = 1}};
    procpool::pool b{{.workers = 1}};
    ppt::gate ga, gb; // one gate per blocked task: a release wakes exactly the task meant
    std::vector<procpool::future<int>> fs;
    fs.push_back(a.submit<gated>(ga.path(), 1));
    fs.push_back(b.submit<twice>(5));
    CHECK(procpool::wait_any(fs) == 1);
    CHECK(fs[1].get() == 10);
    // The other way round: the blocked task is in the second pool.
    std::vector<procpool::future<int>> gs;
    gs.push_back(b.submit<gated>(gb.path(), 2));
    gs.push_back(a.submit<twice>(6)); // queued behind the blocked task of `a`
    ga.release();                      // `a`'s task ends, then `twice` runs there; `b`'s stays blocked
    CHECK(procpool::wait_any(gs) == 1);
    CHECK(gs[1].get() == 12);
    CHECK(fs[0].get() == 1);
    gb.release();
    CHECK(gs[0].get() == 2);
}

TEST_CASE("as_completed mixes in-process futures with futures of two pools", "[future][as_completed]") {
    procpool::pool a{{.workers = 1}};
    procpool::pool b{{.workers = 2}};
    procpool::pool inl{{.start = procpool::start_method::in_process}};
    ppt::gate g;
    std::vector<procpool::future<int>> fs;
    fs.push_back(a.submit<gated>(g.path(), 7)); // 0: blocked until released
    for (int i = 0; i < 6; ++i) {
        fs.push_back(b.submit<twice>(i));   // odd indexes
        fs.push_back(inl.submit<twice>(i)); // even indexes from 2: done already
    }
    std::set<std::size_t> seen;
    std::size_t last = 0;
    for (auto [i, f] : procpool::as_completed(fs).with_index()) {
        CHECK(seen.insert(i).second);
        CHECK(f.get() == (i == 0 ? 7 : 2 * static_cast<int>((i - 1) / 2)));
        last = i;
        if (seen.size() == fs.size() - 1) g.release(); // everything but A's blocked task came first
    }
    CHECK(seen.size() == fs.size());
    CHECK(last == 0);
}

TEST_CASE("as_completed gives each future's index once, over many futures", "[future][as_completed]") {
    auto method = GENERATE(from_range(ppt::all_methods));
    INFO("start method: " << ppt::name(method));
    procpool::pool p{{.workers = 2, .start = method}};
    std::vector<procpool::future<int>> fs;
    for (int i = 0; i < 500; ++i) fs.push_back(p.submit<twice>(i));
    fs[3] = {}; // an invalid future is skipped
    std::vector<int> hits(fs.size(), 0);
    std::size_t n = 0;
    for (auto [i, f] : procpool::as_completed(fs).with_index()) {
        ++hits[i];
        CHECK(f.get() == 2 * static_cast<int>(i));
        ++n;
    }
    CHECK(n == fs.size() - 1);
    CHECK(hits[3] == 0);
    hits[3] = 1;
    CHECK(std::all_of(hits.begin(), hits.end(), [](int h) { return h == 1; }));
}

TEST_CASE("on_done runs once the task is done, on the driving thread, and may use the pool",
          "[future][on_done]") {
    auto method = GENERATE(from_range(ppt::all_methods));
    INFO("start method: " << ppt::name(method));
    procpool::pool p{{.workers = 1, .start = method}};
    std::atomic<int> calls{0};
    std::thread::id ran_on;
    int nested = 0;
    auto f = p.submit<twice>(4);
    f.on_done([&] {
        ran_on = std::this_thread::get_id();
        // Not under the pool's lock: the callback submits to the same pool and waits for the answer.
        nested = p.submit<twice>(50).get();
        ++calls;
    });
    std::thread::id waiter;
    std::thread t([&] {
        waiter = std::this_thread::get_id();
        f.wait();
    });
    t.join();
    CHECK(calls == 1);
    CHECK(nested == 100);
    if (method != procpool::start_method::in_process) CHECK(ran_on == waiter); // the thread that drove the pool
    CHECK(f.get() == 8);                                                        // the future keeps its result

    // Already done: runs at once, in the caller.
    auto g = p.submit<twice>(1);
    g.wait();
    bool now = false;
    g.on_done([&] { now = true; });
    CHECK(now);
}

TEST_CASE("on_done on an rvalue future hands the future to the callback", "[future][on_done]") {
    procpool::pool p{{.workers = 2}};
    std::mutex m;
    std::vector<int> got;
    std::vector<procpool::future<int>> keep;
    for (int i = 0; i < 20; ++i) {
        auto f = p.submit<refuse>(i % 5 == 4 ? -1 : i);
        std::move(f).on_done([&](procpool::future<int> r) {
            std::lock_guard lk(m);
            try {
                got.push_back(r.get());
            } catch (const std::invalid_argument&) {
                got.push_back(-1);
            }
        });
        CHECK_FALSE(f.valid()); // handed over
    }
    // Nothing waits on those futures: another future's wait drives the pool, and runs their callbacks.
    for (int i = 0; i < 3; ++i) keep.push_back(p.submit<twice>(i));
    procpool::wait_all(keep);
    p.shutdown(); // runs what remains, and the callbacks of everything it completes
    std::lock_guard lk(m);
    CHECK(got.size() == 20);
    CHECK(std::count(got.begin(), got.end(), -1) == 4);
}

TEST_CASE("a throwing on_done callback is contained and logged", "[future][on_done]") {
    std::mutex m;
    std::vector<std::string> lines;
    procpool::set_log_sink([&](const procpool::log_event& e) {
        std::lock_guard lk(m);
        lines.push_back(e.message);
    });
    auto level = procpool::get_log_level();
    procpool::set_log_level(procpool::log_level::info);
    {
        procpool::pool p{{.workers = 1}};
        ppt::gate g;
        auto f = p.submit<gated>(g.path(), 3);
        bool second = false;
        f.on_done([] { throw std::runtime_error("callback failure"); });
        f.on_done([&] { second = true; }); // still runs
        g.release();
        CHECK(f.get() == 3); // the waiting thread does not see the callback's exception
        CHECK(second);
        auto h = p.submit<twice>(2);
        h.wait();
        CHECK_NOTHROW(h.on_done([] { throw 42; })); // already done: contained in the caller too
    }
    procpool::set_log_level(level);
    procpool::set_log_sink({});
    std::lock_guard lk(m);
    CHECK(std::count_if(lines.begin(), lines.end(), [](const std::string& s) {
              return s.find("on_done callback threw") != std::string::npos;
          }) == 2);
    CHECK(std::any_of(lines.begin(), lines.end(),
                      [](const std::string& s) { return s.find("callback failure") != std::string::npos; }));
}
