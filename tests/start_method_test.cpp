// SPDX-License-Identifier: BSL-1.0
// tests/start_method_test.cpp: what each start method gives a worker: the parent's state (fork, as of pool
// construction) or a fresh image (spawn); fork refused in a threaded parent; the missing-guard diagnosis.
#include "catch.hpp"
#include "test_tasks.hpp"

#include <procpool/procpool.hpp>

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace sm_t {

// Static initialisation sets it to 1; a test changes it at run time in the parent.
int setting = 1;

int read_setting() { return setting; }
long worker_pid() { return ppt::pid(); }
std::pair<long, int> pid_and_setting() { return {ppt::pid(), setting}; }

/// Restores sm_t::setting at the end of a scope.
struct setting_guard {
    int saved = setting;
    ~setting_guard() { setting = saved; }
};

} // namespace sm_t

PROCPOOL_TASK(sm_t::read_setting);
PROCPOOL_TASK(sm_t::worker_pid);
PROCPOOL_TASK(sm_t::pid_and_setting);

using namespace sm_t;
using procpool::start_method;

TEST_CASE("fork workers see the parent's run-time state, spawn and forkserver workers a fresh image", "[start_method]") {
    setting_guard restore;
    setting = 42; // set at run time, before the pools are constructed
    std::vector<std::pair<std::string, int>> seen;
    for (auto method : ppt::all_methods) {
        procpool::pool p{{.workers = 1, .start = method}};
        seen.emplace_back(ppt::name(method), p.submit<read_setting>().get());
    }
    std::printf("start methods side by side: the parent set `setting` from 1 (its static initialiser) to 42, then "
                "constructed a pool\n");
    for (auto& [name, value] : seen) std::printf("  %-10s worker sees setting = %d\n", name.c_str(), value);
    std::fflush(stdout);
    std::string summary;
    for (auto& [name, value] : seen) summary += name + " sees " + std::to_string(value) + "; ";
    INFO(summary);
    std::vector<std::pair<std::string, int>> expected{{"spawn", 1}}; // a fresh process: static initialisation only
#if PROCPOOL_POSIX // Windows has neither fork nor forkserver
    expected.emplace_back("fork", 42);      // a copy of the parent
    expected.emplace_back("forkserver", 1); // forked from a fresh image
#endif
    expected.emplace_back("in_process", 42); // the parent itself
    CHECK(seen == expected);
}

TEST_CASE("fork workers are copies of the parent as it was when the pool was constructed",
          "[start_method][fork][posix]") {
    setting_guard restore;
    setting = 42;
    // max_tasks_per_worker = 1: every task runs in a new worker, started after the change below.
    procpool::pool p{{.workers = 1, .start = start_method::fork, .max_tasks_per_worker = 1}};
    setting = 99; // after construction: no fork worker sees it, not even the replacements
    std::set<long> pids;
    for (int i = 0; i < 4; ++i) {
        auto [pid, value] = p.submit<pid_and_setting>().get();
        CHECK(value == 42);
        pids.insert(pid);
    }
    CHECK(pids.size() == 4); // four different workers, each forked after `setting = 99`
    CHECK(p.map<read_setting>(std::vector<std::tuple<>>(3)) == std::vector<int>(3, 42));
    std::printf("fork after construction: the parent has setting = %d; %zu recycled fork workers saw %d\n", setting,
                pids.size(), 42);
}

TEST_CASE("spawn workers ignore the parent's run-time state, replacements too", "[start_method][spawn]") {
    setting_guard restore;
    setting = 42;
    procpool::pool p{{.workers = 1, .start = start_method::spawn, .max_tasks_per_worker = 1}};
    std::set<long> pids;
    for (int i = 0; i < 3; ++i) {
        auto [pid, value] = p.submit<pid_and_setting>().get();
        CHECK(value == 1);
        pids.insert(pid);
    }
    CHECK(pids.size() == 3);
}

namespace {
/// A second thread that waits until the end of the scope.
class background_thread {
public:
    background_thread()
        : t_([this] {
              std::unique_lock lk(m_);
              started_ = true;
              cv_.notify_all();
              cv_.wait(lk, [this] { return stop_; });
          }) {
        std::unique_lock lk(m_);
        cv_.wait(lk, [this] { return started_; });
    }
    ~background_thread() {
        {
            std::lock_guard lk(m_);
            stop_ = true;
        }
        cv_.notify_all();
        t_.join();
    }
    background_thread(const background_thread&) = delete;
    background_thread& operator=(const background_thread&) = delete;

private:
    std::mutex m_;
    std::condition_variable cv_;
    bool started_ = false;
    bool stop_ = false;
    std::thread t_; // last: started once the members above exist
};
} // namespace

TEST_CASE("fork is refused in a multi-threaded parent unless on_threads is warn",
          "[start_method][fork][threads][posix]") {
    background_thread other;
    SECTION("refuse (the default)") {
        try {
            procpool::pool p{{.workers = 1, .start = start_method::fork}};
            FAIL("a fork pool was constructed in a process with two threads");
        } catch (const procpool::start_error& e) {
            CHECK_THAT(std::string(e.what()), ppt::has_substring("threads"));
            CHECK_THAT(std::string(e.what()), ppt::has_substring("on_threads"));
        }
    }
    SECTION("warn: forks anyway and logs a warning") {
        std::vector<std::string> messages;
        auto level = procpool::get_log_level();
        procpool::set_log_level(procpool::log_level::info);
        procpool::set_log_sink([&](const procpool::log_event& ev) { messages.push_back(ev.message); });
        struct restore_log {
            procpool::log_level level;
            ~restore_log() {
                procpool::set_log_sink({});
                procpool::set_log_level(level);
            }
        } restore{level};
        procpool::pool p{{.workers = 1, .start = start_method::fork, .on_threads = procpool::threaded_fork::warn}};
        CHECK(p.submit<read_setting>().get() == 1);
        p.shutdown();
        CHECK(std::any_of(messages.begin(), messages.end(), [](const std::string& m) {
            return m.find("warning") != std::string::npos && m.find("threads") != std::string::npos;
        }));
    }
    SECTION("spawn is fine with threads") {
        procpool::pool p{{.workers = 1, .start = start_method::spawn}};
        CHECK(p.submit<read_setting>().get() == 1);
    }
}

TEST_CASE("a spawned worker whose main() constructs a pool before serve_if_worker is diagnosed", "[start_method][spawn]") {
    // tests/main.cpp: with this variable set, a spawned worker's main() constructs a pool without calling
    // serve_if_worker first, as a program that forgot the guard would (the start-up recursion Python's
    // `if __name__ == "__main__"` guard prevents).
    ppt::env_guard env("PROCPOOL_TEST_MAIN_WITHOUT_GUARD", "1");
    try {
        procpool::pool p{{.workers = 1, .start = start_method::spawn}};
        FAIL("the pool started although its worker never reached serve_if_worker");
    } catch (const procpool::start_error& e) {
        // The worker's own diagnosis, not the engine's generic "died before its handshake ... must reach
        // serve_if_worker", which a worker that crashes at start-up also gets.
        CHECK_THAT(std::string(e.what()),
                   ppt::has_substring("a pool was constructed in a spawned worker process before "
                                      "procpool::serve_if_worker(argc, argv) ran"));
    }
}

TEST_CASE("tasks run in worker processes, in_process in the caller", "[start_method]") {
    auto method = GENERATE(from_range(ppt::all_methods));
    INFO("start method: " << ppt::name(method));
    procpool::pool p{{.workers = 2, .start = method}};
    const long me = ppt::pid();
    std::set<long> seen;
    for (int i = 0; i < 8; ++i) seen.insert(p.submit<worker_pid>().get());
    auto workers = p.worker_pids();
    if (method == start_method::in_process) {
        CHECK(p.size() == 0);
        CHECK(workers.empty());
        CHECK(seen == std::set<long>{me});
    } else {
        CHECK(p.size() == 2);
        REQUIRE(workers.size() == 2);
        CHECK(std::set<long>(workers.begin(), workers.end()).size() == 2);
        CHECK(std::find(workers.begin(), workers.end(), me) == workers.end());
        CHECK_FALSE(seen.count(me));
        for (long pid : seen) CHECK(std::find(workers.begin(), workers.end(), pid) != workers.end());
    }
}
