// SPDX-License-Identifier: BSL-1.0
// tests/forkserver_test.cpp (POSIX: there is no fork on Windows): start_method::forkserver. A server process is
// spawned when the pool is constructed (a fresh image, static initialization only, single-threaded) and forks
// every worker, replacements included. So its workers have spawn's state, start like fork, and a parent with
// threads is no problem. The side-by-side tests in start_method_test.cpp and context_test.cpp cover its state.
#include "catch.hpp"
#include "test_tasks.hpp"

#include <procpool/procpool.hpp>

#if PROCPOOL_POSIX

#include <algorithm>
#include <condition_variable>
#include <csignal>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include <signal.h>
#include <unistd.h>

namespace fs_t {
long parent_of_worker() { return static_cast<long>(::getppid()); }
long pid_of_worker() { return static_cast<long>(::getpid()); }
int kill_own_worker(int) {
    ::kill(::getpid(), SIGKILL);
    return 0;
}
} // namespace fs_t
PROCPOOL_TASK(fs_t::parent_of_worker);
PROCPOOL_TASK(fs_t::pid_of_worker);
PROCPOOL_TASK(fs_t::kill_own_worker);

using procpool::pool;
using procpool::start_method;

TEST_CASE("forkserver: every worker, replacements included, is forked by one server process", "[forkserver][posix]") {
    pool p{{.workers = 2, .start = start_method::forkserver}};
    const long me = static_cast<long>(::getpid());
    std::set<long> parents;
    for (int i = 0; i < 8; ++i) parents.insert(p.submit<fs_t::parent_of_worker>().get());
    REQUIRE(parents.size() == 1);
    const long server = *parents.begin();
    CHECK(server != me); // not spawned by the test process, as spawn workers are
    auto workers = p.worker_pids();
    CHECK(std::find(workers.begin(), workers.end(), server) == workers.end());

    // A worker dies: the pool reports it as usual (the server tells the pool how its child ended) and the
    // replacement comes from the same server.
    try {
        p.submit<fs_t::kill_own_worker>(0).get();
        FAIL("no worker_died");
    } catch (const procpool::worker_died& e) {
        CHECK(e.signal() == SIGKILL);
    }
    for (int i = 0; i < 8; ++i) CHECK(p.submit<fs_t::parent_of_worker>().get() == server);
}

TEST_CASE("forkserver: a parent with threads can use it where fork refuses", "[forkserver][posix]") {
    std::mutex m;
    std::condition_variable cv;
    bool stop = false;
    std::thread other([&] {
        std::unique_lock lk(m);
        cv.wait(lk, [&] { return stop; });
    });
    struct joiner {
        std::mutex& m;
        std::condition_variable& cv;
        bool& stop;
        std::thread& t;
        ~joiner() {
            {
                std::lock_guard lk(m);
                stop = true;
            }
            cv.notify_all();
            t.join();
        }
    } join{m, cv, stop, other};
    CHECK_THROWS_AS((pool{{.workers = 1, .start = start_method::fork}}), procpool::start_error);
    pool p{{.workers = 2, .start = start_method::forkserver}};
    std::set<long> pids;
    for (int i = 0; i < 8; ++i) pids.insert(p.submit<fs_t::pid_of_worker>().get());
    CHECK_FALSE(pids.count(static_cast<long>(::getpid())));
}

TEST_CASE("forkserver: a main() that constructs a pool before serve_if_worker is diagnosed", "[forkserver][posix]") {
    // tests/main.cpp: with this variable set, the spawned server's main() constructs a pool first.
    ppt::env_guard env("PROCPOOL_TEST_MAIN_WITHOUT_GUARD", "1");
    try {
        pool p{{.workers = 1, .start = start_method::forkserver}};
        FAIL("the pool started although its server never reached serve_if_worker");
    } catch (const procpool::start_error& e) {
        CHECK_THAT(std::string(e.what()), ppt::has_substring("before procpool::serve_if_worker(argc, argv) ran"));
    }
}

TEST_CASE("forkserver: when the server dies, the pool says so instead of hanging", "[forkserver][posix]") {
    pool p{{.workers = 1, .start = start_method::forkserver}};
    const long server = p.submit<fs_t::parent_of_worker>().get();
    REQUIRE(::kill(static_cast<pid_t>(server), SIGKILL) == 0);
    // Dead, not only signalled: its exit is what sends its worker the parent-death signal (on a loaded machine the
    // killed process may wait for a CPU to die, while the worker still answers). Once it is a zombie, the worker's
    // SIGKILL is pending and it runs no more task. Polling /proc, bounded: a condition, not a timing.
    for (int i = 0; i < 20000; ++i) {
        const char state = ppt::process_state(server);
        if (state == 0 || state == 'Z') break;
        ::usleep(500);
    }
    // Its workers die with it (they are bound to their parent), so the pool can neither run nor start workers.
    try {
        for (int i = 0; i < 100; ++i) p.submit<fs_t::pid_of_worker>().get();
        FAIL("tasks still ran after the forkserver was killed");
    } catch (const procpool::start_error& e) {
        CHECK_THAT(std::string(e.what()), ppt::has_substring("forkserver"));
    } catch (const procpool::worker_died& e) {
        SUCCEED(e.what()); // the running task's worker died first; the next submit reports the server
        CHECK_THROWS_AS(p.submit<fs_t::pid_of_worker>().get(), procpool::start_error);
    }
}

#endif // PROCPOOL_POSIX

TEST_CASE("fork and forkserver exist where the OS can fork", "[forkserver]") {
    using procpool::start_method;
    STATIC_REQUIRE(procpool::is_available(start_method::forkserver) == PROCPOOL_POSIX);
    STATIC_REQUIRE(procpool::is_available(start_method::fork) == PROCPOOL_POSIX);
    STATIC_REQUIRE(procpool::is_available(start_method::spawn));
    STATIC_REQUIRE(procpool::is_available(start_method::in_process));
}
