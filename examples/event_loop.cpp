// SPDX-License-Identifier: BSL-1.0
// examples/event_loop.cpp: a pool used from an Asio event loop, with no thread blocked on it. pool.native_handle()
// is a descriptor that turns readable when the pool has something to do; Asio waits on it with a
// posix::stream_descriptor, and pool.poll() then makes progress without blocking. Tasks are awaited with co_await
// from a coroutine, which the loop resumes. Needs Asio (Debian: libasio-dev) and Linux (epoll); otherwise it says so.
#include <procpool/procpool.hpp>

#include <coroutine>
#include <cstdio>
#include <exception>
#include <functional>
#include <string>

#if __has_include(<asio.hpp>) && defined(__linux__)
#include <asio.hpp>

#include <unistd.h>

int slow_fib(int n) { return n < 2 ? n : slow_fib(n - 1) + slow_fib(n - 2); }
PROCPOOL_TASK(slow_fib);

// A coroutine that nobody awaits: it starts at once and records its end in `done`.
struct detached {
    struct promise_type {
        detached get_return_object() noexcept { return {}; }
        std::suspend_never initial_suspend() noexcept { return {}; }
        std::suspend_never final_suspend() noexcept { return {}; }
        void return_void() noexcept {}
        void unhandled_exception() noexcept { std::terminate(); }
    };
};

detached fibs(procpool::pool& pool, bool& done) {
    for (int n : {20, 25, 30}) {
        int v = co_await pool.submit<slow_fib>(n); // suspends; the event loop resumes it when the result arrives
        std::printf("fib(%d) = %d\n", n, v);
    }
    done = true;
}

int main(int argc, char** argv) {
    procpool::serve_if_worker(argc, argv);
    procpool::pool pool{{.workers = 2}};
    asio::io_context io;
    // Asio closes the descriptor it is given: give it a copy; the pool keeps its own.
    asio::posix::stream_descriptor pool_events(io, ::dup(pool.native_handle()));
    bool done = false;
    std::function<void()> watch = [&] {
        pool_events.async_wait(asio::posix::stream_descriptor::wait_read, [&](std::error_code ec) {
            if (ec) return;
            pool.poll(); // handles what arrived: completes futures, resumes the coroutine
            if (!done) watch();
        });
    };
    fibs(pool, done);
    watch();
    io.run(); // returns once the coroutine is done and nothing is left to wait for
    std::printf("event loop finished\n");
}
#else
int main() { std::printf("this example needs Asio (Debian: libasio-dev) and Linux\n"); }
#endif
