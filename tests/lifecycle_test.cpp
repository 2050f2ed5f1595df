// SPDX-License-Identifier: BSL-1.0
// tests/lifecycle_test.cpp: a worker's life: initializer, finalizer, recycling with max_tasks_per_worker (the
// state that leaks between tasks of a reused worker), and the lifecycle events in the log.
#include "catch.hpp"
#include "test_tasks.hpp"

#include <procpool/procpool.hpp>

#include <algorithm>
#include <map>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace lc_t {

int init_value = 0; // set by the initializer
int init_calls = 0; // how often the initializer ran in this process
int leaked = 0;     // set by one task, read by the next

struct init_failure : std::runtime_error {
    using std::runtime_error::runtime_error;
};

void initialize(int v) {
    init_value = v;
    ++init_calls;
}
void initialize_throws(std::string message) { throw std::invalid_argument(message); }
void initialize_throws_custom(std::string message) { throw init_failure(message); }
std::pair<int, int> read_init() { return {init_value, init_calls}; }
void record_pid(std::string path) { ppt::append_line(path, std::to_string(ppt::pid())); }
long pid_of(int) { return ppt::pid(); }
void leak_set(int v) { leaked = v; }
int leak_get() { return leaked; }

/// Resets the globals the in_process and fork pools share with (or copy from) the parent.
struct reset_globals {
    reset_globals() { init_value = init_calls = leaked = 0; }
    ~reset_globals() { init_value = init_calls = leaked = 0; }
};

std::set<long> as_pids(const std::vector<std::string>& lines) {
    std::set<long> out;
    for (auto& l : lines) out.insert(std::stol(l));
    return out;
}

} // namespace lc_t

PROCPOOL_TASK(lc_t::initialize);
PROCPOOL_TASK(lc_t::initialize_throws);
PROCPOOL_TASK(lc_t::initialize_throws_custom);
PROCPOOL_TASK(lc_t::read_init);
PROCPOOL_TASK(lc_t::record_pid);
PROCPOOL_TASK(lc_t::pid_of);
PROCPOOL_TASK(lc_t::leak_set);
PROCPOOL_TASK(lc_t::leak_get);

using namespace lc_t;
using procpool::start_method;

TEST_CASE("the initializer runs once per worker, before its first task", "[lifecycle][initializer]") {
    auto method = GENERATE(from_range(ppt::all_methods));
    INFO("start method: " << ppt::name(method));
    reset_globals reset;
    SECTION("long-lived workers") {
        procpool::pool p{{.workers = 2, .start = method, .initializer = procpool::call<initialize>(7)}};
        for (int i = 0; i < 10; ++i) CHECK(p.submit<read_init>().get() == std::pair{7, 1});
        CHECK(p.map<read_init>(std::vector<std::tuple<>>(6), 1) == std::vector<std::pair<int, int>>(6, {7, 1}));
    }
    SECTION("recycled workers: each new one is initialized once, too") {
        procpool::pool p{{.workers = 2,
                          .start = method,
                          .max_tasks_per_worker = 2,
                          .initializer = procpool::call<initialize>(8)}};
        for (int i = 0; i < 6; ++i) {
            auto [value, calls] = p.submit<read_init>().get();
            CHECK(value == 8);
            CHECK(calls == 1);
        }
    }
    if (method != start_method::in_process) CHECK(init_calls == 0); // never in the parent
}

TEST_CASE("an initializer that throws fails the pool's construction with initializer_error", "[lifecycle][initializer]") {
    auto method = GENERATE(from_range(ppt::all_methods));
    INFO("start method: " << ppt::name(method));
    SECTION("a standard exception: cause() rethrows it as its own type") {
        try {
            procpool::pool p{{.workers = 2,
                              .start = method,
                              .initializer = procpool::call<initialize_throws>(std::string("no database"))}};
            FAIL("the pool was constructed");
        } catch (const procpool::initializer_error& e) {
            CHECK_THAT(std::string(e.what()), ppt::has_substring("lc_t::initialize_throws"));
            CHECK_THAT(std::string(e.what()), ppt::has_substring("no database"));
            REQUIRE(e.cause());
            CHECK_THROWS_AS(std::rethrow_exception(e.cause()), std::invalid_argument);
            CHECK_THROWS_WITH(std::rethrow_exception(e.cause()), "no database");
        }
    }
    SECTION("a custom exception: cause() is a remote_error naming its type") {
        try {
            procpool::pool p{{.workers = 1,
                              .start = method,
                              .initializer = procpool::call<initialize_throws_custom>(std::string("bad config"))}};
            FAIL("the pool was constructed");
        } catch (const procpool::initializer_error& e) {
            try {
                std::rethrow_exception(e.cause());
            } catch (const procpool::remote_error& r) {
                CHECK_THAT(r.type_name(), ppt::has_substring("init_failure"));
                CHECK(r.message() == "bad config");
            }
        }
    }
    // Nothing is left behind: the next pool starts normally.
    procpool::pool ok{{.workers = 1, .start = method}};
    CHECK(ok.submit<pid_of>(0).get() > 0);
}

TEST_CASE("the finalizer runs in every worker that retires", "[lifecycle][finalizer]") {
    ppt::temp_dir dir;
    auto trace = dir.file("finalized");

    SECTION("shutdown retires every worker") {
        auto method = GENERATE(from_range(ppt::process_methods));
        INFO("start method: " << ppt::name(method));
        std::vector<long> workers;
        {
            procpool::pool p{{.workers = 2, .start = method, .finalizer = procpool::call<record_pid>(trace)}};
            CHECK(p.map<pid_of>(std::vector<int>(8, 0), 1).size() == 8);
            workers = p.worker_pids();
            REQUIRE(workers.size() == 2);
            CHECK(ppt::read_lines(trace).empty()); // nothing retired yet
            p.shutdown();
            auto lines = ppt::read_lines(trace);
            CHECK(lines.size() == 2);
            CHECK(as_pids(lines) == std::set<long>(workers.begin(), workers.end()));
        }
        CHECK(ppt::read_lines(trace).size() == 2); // the destructor after shutdown() retires nobody twice
    }
    SECTION("the pool's destructor retires them too") {
        auto method = GENERATE(from_range(ppt::process_methods));
        INFO("start method: " << ppt::name(method));
        std::vector<long> workers;
        {
            procpool::pool p{{.workers = 2, .start = method, .finalizer = procpool::call<record_pid>(trace)}};
            workers = p.worker_pids();
        }
        CHECK(as_pids(ppt::read_lines(trace)) == std::set<long>(workers.begin(), workers.end()));
        CHECK(ppt::read_lines(trace).size() == 2);
    }
    SECTION("recycling retires workers, and runs their finalizer") {
        auto method = GENERATE(from_range(ppt::process_methods));
        INFO("start method: " << ppt::name(method));
        std::set<long> ran_tasks, alive_at_shutdown;
        {
            procpool::pool p{{.workers = 1,
                              .start = method,
                              .max_tasks_per_worker = 1,
                              .finalizer = procpool::call<record_pid>(trace)}};
            for (int i = 0; i < 4; ++i) ran_tasks.insert(p.submit<pid_of>(i).get());
            REQUIRE(ran_tasks.size() == 4);
            auto live = p.worker_pids();
            alive_at_shutdown.insert(live.begin(), live.end());
            p.shutdown();
        }
        auto lines = ppt::read_lines(trace);
        auto finalized = as_pids(lines);
        CHECK(finalized.size() == lines.size()); // once per worker
        // Every worker that ran a task retired through recycling, and ran its finalizer. The replacement started
        // after the last task ran it too if it was set up by the time of shutdown; one still starting is closed
        // without (it ran no initializer either).
        for (long pid : ran_tasks) CHECK(finalized.count(pid) == 1);
        for (long pid : finalized) CHECK((ran_tasks.count(pid) == 1 || alive_at_shutdown.count(pid) == 1));
        CHECK(lines.size() >= 4);
        CHECK(lines.size() <= 5);
    }
    SECTION("in_process: the finalizer runs once, in the caller, at shutdown") {
        {
            procpool::pool p{{.start = start_method::in_process, .finalizer = procpool::call<record_pid>(trace)}};
            CHECK(p.submit<pid_of>(1).get() == ppt::pid());
            CHECK(ppt::read_lines(trace).empty());
        }
        CHECK(ppt::read_lines(trace) == std::vector<std::string>{std::to_string(ppt::pid())});
    }
}

TEST_CASE("max_tasks_per_worker stops state leaking from one task to the next", "[lifecycle][recycling]") {
    auto method = GENERATE(from_range(ppt::process_methods));
    INFO("start method: " << ppt::name(method));
    reset_globals reset;
    SECTION("a reused worker keeps what an earlier task left in its globals (the classic leak)") {
        procpool::pool p{{.workers = 1, .start = method}};
        p.submit<leak_set>(5).get();
        CHECK(p.submit<leak_get>().get() == 5);
        CHECK(leaked == 0); // and never in the parent
    }
    SECTION("with max_tasks_per_worker = 1 the next task runs in a fresh worker") {
        procpool::pool p{{.workers = 1, .start = method, .max_tasks_per_worker = 1}};
        p.submit<leak_set>(5).get();
        CHECK(p.submit<leak_get>().get() == 0);
        p.submit<leak_set>(6).get();
        CHECK(p.submit<leak_get>().get() == 0);
    }
}

TEST_CASE("recycling starts new worker processes", "[lifecycle][recycling]") {
    auto method = GENERATE(from_range(ppt::process_methods));
    INFO("start method: " << ppt::name(method));
    SECTION("max_tasks_per_worker = 1: every task in its own process") {
        procpool::pool p{{.workers = 2, .start = method, .max_tasks_per_worker = 1}};
        std::set<long> pids;
        constexpr int n = 4;
        for (int i = 0; i < n; ++i) pids.insert(p.submit<pid_of>(i).get());
        CHECK(pids.size() == n);
        CHECK_FALSE(pids.count(ppt::pid()));
        // map chunks count as tasks
        auto chunk_pids = p.map<pid_of>(std::vector<int>(3, 0), 1);
        std::set<long> distinct(chunk_pids.begin(), chunk_pids.end());
        CHECK(distinct.size() == 3);
        for (long pid : distinct) CHECK_FALSE(pids.count(pid));
    }
    SECTION("max_tasks_per_worker = 3: exactly three tasks per worker") {
        procpool::pool p{{.workers = 1, .start = method, .max_tasks_per_worker = 3}};
        std::map<long, int> per_pid;
        for (int i = 0; i < 9; ++i) ++per_pid[p.submit<pid_of>(i).get()];
        CHECK(per_pid.size() == 3);
        for (auto& [pid, count] : per_pid) CHECK(count == 3);
    }
}

TEST_CASE("lifecycle events reach the log sink", "[lifecycle][log]") {
    auto method = GENERATE(from_range(ppt::process_methods));
    INFO("start method: " << ppt::name(method));
    std::mutex m;
    std::vector<procpool::log_event> events;
    struct restore_log {
        procpool::log_level level = procpool::get_log_level();
        ~restore_log() {
            procpool::set_log_sink({});
            procpool::set_log_level(level);
        }
    } restore;
    procpool::set_log_level(procpool::log_level::debug);
    procpool::set_log_sink([&](const procpool::log_event& ev) {
        std::lock_guard lk(m);
        events.push_back(ev);
    });
    std::vector<long> workers;
    {
        procpool::pool p{{.workers = 1, .start = method, .max_tasks_per_worker = 1}};
        workers = p.worker_pids();
        CHECK(p.submit<pid_of>(0).get() == workers.at(0));
    }
    procpool::set_log_sink({});
    auto has = [&](procpool::log_level level, const std::string& a, const std::string& b = "") {
        return std::any_of(events.begin(), events.end(), [&](const procpool::log_event& ev) {
            return ev.level == level && ev.message.find(a) != std::string::npos &&
                   ev.message.find(b) != std::string::npos;
        });
    };
    const std::string first = "pid " + std::to_string(workers.at(0));
    CHECK(has(procpool::log_level::info, "started", first));
    CHECK(has(procpool::log_level::debug, "handshake ok", first));
    CHECK(has(procpool::log_level::debug, "dispatch \"lc_t::pid_of\"", first));
    CHECK(has(procpool::log_level::info, "recycled", first));
    CHECK(has(procpool::log_level::info, "exited with code 0", first));
    if (method == start_method::fork) CHECK(has(procpool::log_level::debug, "fork template started"));
    for (auto& ev : events) CHECK(ev.pid == ppt::pid()); // parent-side events only

    // Restored: nothing more arrives at the old sink, from a pool that logs (an in_process one never does).
    // Its events go to stderr now, so at info level: two lines.
    auto n = events.size();
    procpool::set_log_level(procpool::log_level::info);
    {
        procpool::pool p{{.workers = 1, .start = method}};
        CHECK(p.submit<pid_of>(0).get() == p.worker_pids().at(0));
    }
    CHECK(events.size() == n);
}
