// SPDX-License-Identifier: BSL-1.0
// tests/event_loop_test.cpp: a pool used from an event loop without a blocking thread: pool.native_handle() (a
// descriptor that turns readable when the pool has something to do), pool.poll() (progress without blocking), and
// co_await on a future (resumed from the loop), with poll(2) and with Asio's posix::stream_descriptor.
#include "catch.hpp"
#include "test_tasks.hpp"

#include <procpool/procpool.hpp>

#include <chrono>
#include <coroutine>
#include <exception>
#include <functional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#if !defined(_WIN32)
#include <poll.h>
#include <unistd.h>
#endif

#if __has_include(<asio.hpp>) && !defined(_WIN32)
#include <asio.hpp>
#define PPT_HAS_ASIO 1
#else
#define PPT_HAS_ASIO 0
#endif

namespace loop_t {
int cube(int x) { return x * x * x; }
int refuse(int x) {
    if (x < 0) throw std::invalid_argument("negative: " + std::to_string(x));
    return x;
}
int gated(std::string path, int v) { return ppt::wait_on_gate(path) == 'x' ? v : -v; }
int hang(int x) {
    for (;;) std::this_thread::sleep_for(std::chrono::hours(1)); // the hung task: only its timeout ends it
    return x;
}
} // namespace loop_t
PROCPOOL_TASK(loop_t::cube);
PROCPOOL_TASK(loop_t::refuse);
PROCPOOL_TASK(loop_t::gated);
PROCPOOL_TASK(loop_t::hang);

namespace loop_t {
/// The smallest coroutine type: starts at once, nobody awaits it. The test checks what it recorded.
struct detached {
    struct promise_type {
        detached get_return_object() noexcept { return {}; }
        std::suspend_never initial_suspend() noexcept { return {}; }
        std::suspend_never final_suspend() noexcept { return {}; }
        void return_void() noexcept {}
        void unhandled_exception() noexcept { std::terminate(); }
    };
};

detached cubes_and_failure(procpool::pool& p, std::vector<int>& out, std::string& error, bool& done) {
    out.push_back(co_await p.submit<cube>(2));
    auto f = p.submit<cube>(3);
    out.push_back(co_await f);
    try {
        out.push_back(co_await p.submit<refuse>(-4));
    } catch (const std::invalid_argument& e) {
        error = e.what();
    }
    done = true;
}
} // namespace loop_t

#if !defined(_WIN32) && defined(__linux__)
namespace {
/// Waits for the pool's descriptor to be readable (at most a minute: a hang fails the test instead of blocking it).
bool wait_readable(int fd) {
    pollfd p{fd, POLLIN, 0};
    return ::poll(&p, 1, 60000) == 1 && (p.revents & POLLIN);
}

/// The event loop: wait on the descriptor, poll the pool, until `done`. Counts the wake-ups.
int run_loop(procpool::pool& p, const std::function<bool()>& done) {
    int wakeups = 0;
    while (!done()) {
        REQUIRE(wait_readable(p.native_handle()));
        ++wakeups;
        p.poll();
    }
    return wakeups;
}
} // namespace

TEST_CASE("native_handle turns readable when results arrive, and poll() completes the futures",
          "[event_loop][posix]") {
    auto method = GENERATE(from_range(ppt::process_methods));
    INFO("start method: " << ppt::name(method));
    procpool::pool p{{.workers = 2, .start = method}};
    const int fd = p.native_handle();
    REQUIRE(fd >= 0);
    CHECK(p.native_handle() == fd); // one descriptor for the pool's life
    std::vector<procpool::future<int>> fs;
    int callbacks = 0;
    for (int i = 0; i < 50; ++i) {
        fs.push_back(p.submit<loop_t::cube>(i));
        fs.back().on_done([&] { ++callbacks; }); // run by poll(), on this thread
    }
    // No thread waits on a future: only the loop makes progress.
    auto all_ready = [&] {
        for (auto& f : fs)
            if (!f.is_ready()) return false;
        return true;
    };
    CHECK(run_loop(p, all_ready) >= 1);
    CHECK(callbacks == 50);
    for (int i = 0; i < 50; ++i) CHECK(fs[static_cast<std::size_t>(i)].get() == i * i * i);
}

TEST_CASE("poll() returns without blocking while tasks run, and a timeout is enforced from the loop",
          "[event_loop][posix]") {
    procpool::pool p{{.workers = 1}};
    ppt::gate g;
    auto f = p.submit<loop_t::gated>(g.path(), 5);
    for (int i = 0; i < 3; ++i) p.poll(); // returns at once: the task is blocked on the gate
    CHECK_FALSE(f.is_ready());
    g.release();
    run_loop(p, [&] { return f.is_ready(); });
    CHECK(f.get() == 5);
    // The descriptor turns readable at a task's deadline too (nothing arrives from a hung worker).
    auto h = p.submit_with<loop_t::hang>({.timeout = std::chrono::milliseconds(200)}, 1);
    run_loop(p, [&] { return h.is_ready(); });
    CHECK_THROWS_AS(h.get(), procpool::task_timeout);
    CHECK(p.submit<loop_t::cube>(3).get() == 27); // the replacement works; get() from a thread still drives
}

TEST_CASE("co_await on a future suspends the coroutine and the event loop resumes it", "[event_loop][coroutine][posix]") {
    procpool::pool p{{.workers = 2}};
    std::vector<int> out;
    std::string error;
    bool done = false;
    loop_t::cubes_and_failure(p, out, error, done);
    CHECK_FALSE(done); // suspended at the first co_await: nothing blocked
    run_loop(p, [&] { return done; });
    CHECK(out == std::vector<int>{8, 27});
    CHECK(error == "negative: -4");
}
#endif

TEST_CASE("co_await and poll() work with in_process too", "[event_loop][coroutine]") {
    procpool::pool p{{.start = procpool::start_method::in_process}};
    std::vector<int> out;
    std::string error;
    bool done = false;
    loop_t::cubes_and_failure(p, out, error, done); // every job is done at submit: no suspension
    p.poll();
    CHECK(done);
    CHECK(out == std::vector<int>{8, 27});
    CHECK(error == "negative: -4");
#if !defined(_WIN32)
    CHECK(p.native_handle() >= 0); // a descriptor that never turns readable: nothing is ever pending
#endif
}

#if PPT_HAS_ASIO && defined(__linux__)
TEST_CASE("an Asio event loop drives a pool through posix::stream_descriptor, with no blocking thread",
          "[event_loop][asio][posix]") {
    procpool::pool p{{.workers = 2}};
    asio::io_context io;
    // Asio closes what it is given: it gets a duplicate of the pool's descriptor.
    asio::posix::stream_descriptor pool_events(io, ::dup(p.native_handle()));
    std::vector<int> out;
    std::string error;
    bool done = false;
    int ticks = 0;
    std::function<void()> watch = [&] {
        pool_events.async_wait(asio::posix::stream_descriptor::wait_read, [&](std::error_code ec) {
            if (ec) return;
            p.poll();
            if (!done) watch();
        });
    };
    asio::steady_timer timer(io);
    std::function<void()> tick = [&] { // other work of the same loop goes on meanwhile
        timer.expires_after(std::chrono::milliseconds(1));
        timer.async_wait([&](std::error_code ec) {
            if (ec || done) return;
            ++ticks;
            tick();
        });
    };
    loop_t::cubes_and_failure(p, out, error, done);
    watch();
    tick();
    io.run(); // returns when nothing is left to wait for: the coroutine finished and nothing re-armed
    CHECK(done);
    CHECK(out == std::vector<int>{8, 27});
    CHECK(error == "negative: -4");
}
#endif
