// SPDX-License-Identifier: BSL-1.0
// tests/per_process_test.cpp: per_process<T>: one instance per process, built on first use, rebuilt in a forked
// child without destroying the parent's, reused across the tasks of a worker, destroyed when a worker retires.
#include "catch.hpp"
#include "test_tasks.hpp"

#include <procpool/per_process.hpp>
#include <procpool/procpool.hpp>

#include <atomic>
#include <cstdint>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

namespace pp_t {

// Where a resource's destructor writes its trace: a context, so spawned workers get it too.
std::string trace_path;
std::string get_trace_path() { return trace_path; }
void set_trace_path(std::string p) { trace_path = std::move(p); }

int constructions = 0; // in this process

/// A resource that must not be shared between processes; not even movable.
struct resource {
    long pid = ppt::pid(); // the process that built it
    int serial = ++constructions;
    bool alive = true;
    resource() = default;
    resource(const resource&) = delete;
    resource& operator=(const resource&) = delete;
    ~resource() {
        alive = false;
        if (!trace_path.empty())
            ppt::append_line(trace_path, "destroyed " + std::to_string(pid) + " by " + std::to_string(ppt::pid()));
    }
};

procpool::per_process<resource> shared_resource{[] { return resource(); }};

/// What a worker sees: its pid, its instance's builder pid, serial and address.
std::tuple<long, long, int, std::uint64_t> instance_info() {
    resource& r = shared_resource.get();
    return {ppt::pid(), r.pid, r.serial, reinterpret_cast<std::uintptr_t>(&r)};
}
long worker_pid() { return ppt::pid(); }

/// Restores the parent's state: no instance, no trace.
struct fresh_parent {
    fresh_parent() { reset(); }
    ~fresh_parent() { reset(); }
    static void reset() {
        trace_path.clear();
        shared_resource.reset();
        constructions = 0;
    }
};

} // namespace pp_t

PROCPOOL_CONTEXT("pp_t.trace_path", pp_t::get_trace_path, pp_t::set_trace_path);
PROCPOOL_TASK(pp_t::instance_info);
PROCPOOL_TASK(pp_t::worker_pid);

using namespace pp_t;
using procpool::start_method;

TEST_CASE("per_process builds one instance per process on first use", "[per_process][context]") {
    fresh_parent fresh;
    CHECK_FALSE(shared_resource.has_value());
    resource& a = shared_resource.get();
    CHECK(shared_resource.has_value());
    CHECK(a.pid == ppt::pid());
    CHECK(&*shared_resource == &a);
    CHECK(shared_resource->serial == 1);
    CHECK(constructions == 1);
    shared_resource.reset();
    CHECK_FALSE(shared_resource.has_value());
    CHECK(shared_resource->serial == 2); // rebuilt on the next use

    SECTION("deduces T from the factory and defaults to T's default constructor") {
        procpool::per_process deduced{[] { return std::string("conn"); }};
        STATIC_REQUIRE(std::is_same_v<decltype(deduced), procpool::per_process<std::string>>);
        CHECK(*deduced == "conn");
        procpool::per_process<std::vector<int>> by_default;
        CHECK(by_default->empty());
    }
    SECTION("construction is thread-safe: one instance for concurrent first uses") {
        std::atomic<int> calls{0};
        procpool::per_process<int> counted{[&] { return ++calls; }};
        std::vector<std::thread> threads;
        std::vector<int*> seen(8);
        for (std::size_t i = 0; i < seen.size(); ++i) threads.emplace_back([&, i] { seen[i] = &counted.get(); });
        for (auto& t : threads) t.join();
        CHECK(calls == 1);
        CHECK(std::set<int*>(seen.begin(), seen.end()).size() == 1);
    }
    SECTION("a factory that throws builds nothing; the next use tries again") {
        int attempt = 0;
        procpool::per_process<int> flaky{[&] {
            if (++attempt == 1) throw std::runtime_error("not yet");
            return attempt;
        }};
        CHECK_THROWS_AS(flaky.get(), std::runtime_error);
        CHECK_FALSE(flaky.has_value());
        CHECK(flaky.get() == 2);
    }
}

TEST_CASE("per_process: each worker builds its own instance, the parent's is untouched", "[per_process][context]") {
    for (auto method : ppt::process_methods) {
        INFO(ppt::name(method));
        fresh_parent fresh;
        ppt::temp_dir dir;
        trace_path = dir.file("trace");
        resource& mine = shared_resource.get(); // built before the pool: a fork worker inherits a copy of it
        const long parent = ppt::pid();
        long worker = 0;
        {
            procpool::pool p{{.workers = 1, .start = method}};
            auto [wpid, built_by, serial, address] = p.submit<instance_info>().get();
            worker = wpid;
            CHECK(wpid != parent);
            CHECK(built_by == wpid); // its own instance, not the parent's copy
            // fork: the worker inherited the parent's instance (serial 1) and built a second one
            CHECK(serial == (method == start_method::fork ? 2 : 1));
            // The same instance for every later task of that worker.
            for (int i = 0; i < 3; ++i)
                CHECK(p.submit<instance_info>().get() == std::tuple{wpid, wpid, serial, address});
        }
        // The parent's instance is the same object, alive, and was never destroyed in any process.
        CHECK(shared_resource.has_value());
        CHECK(&shared_resource.get() == &mine);
        CHECK(mine.alive);
        CHECK(mine.serial == 1);
        CHECK(constructions == 1);
        // The worker destroyed its own instance when it retired at shutdown, and only that one.
        CHECK(ppt::read_lines(trace_path) ==
              std::vector<std::string>{"destroyed " + std::to_string(worker) + " by " + std::to_string(worker)});
    }
}

TEST_CASE("per_process: a retiring worker destroys its instance", "[per_process][context]") {
    for (auto method : ppt::process_methods) {
        INFO(ppt::name(method));
        fresh_parent fresh;
        ppt::temp_dir dir;
        trace_path = dir.file("trace");
        std::set<long> used;
        {
            procpool::pool p{{.workers = 1, .start = method, .max_tasks_per_worker = 1}};
            for (int i = 0; i < 3; ++i) {
                auto [wpid, built_by, serial, address] = p.submit<instance_info>().get();
                CHECK(built_by == wpid);
                CHECK(serial == 1);
                used.insert(wpid);
            }
            CHECK(p.submit<worker_pid>().get() > 0); // a worker that never builds the resource
        }
        REQUIRE(used.size() == 3);
        std::set<std::string> expected;
        for (long pid : used) expected.insert("destroyed " + std::to_string(pid) + " by " + std::to_string(pid));
        auto lines = ppt::read_lines(trace_path);
        CHECK(std::set<std::string>(lines.begin(), lines.end()) == expected);
        CHECK(lines.size() == 3); // each destroyed once; the workers that never used it destroyed nothing
        CHECK_FALSE(shared_resource.has_value()); // the parent never built one
    }
}

TEST_CASE("per_process in_process: tasks use the parent's instance, shutdown keeps it", "[per_process][context]") {
    fresh_parent fresh;
    ppt::temp_dir dir;
    trace_path = dir.file("trace");
    const long parent = ppt::pid();
    {
        procpool::pool p{{.start = start_method::in_process}};
        auto [wpid, built_by, serial, address] = p.submit<instance_info>().get();
        CHECK(wpid == parent);
        CHECK(built_by == parent);
        CHECK(address == reinterpret_cast<std::uintptr_t>(&shared_resource.get()));
    }
    CHECK(shared_resource.has_value());
    CHECK(shared_resource->alive);
    CHECK(ppt::read_lines(trace_path).empty());
}
