// SPDX-License-Identifier: BSL-1.0
// tests/context_test.cpp: contexts (parent run-time state captured at submit, applied in workers only when
// changed, under every start method, replacements included) and the leak audit with each leak_policy.
#include "catch.hpp"
#include "test_tasks.hpp"

#include <procpool/procpool.hpp>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace ctx_t {

// Static initialisation sets both to 1. `plain` is an ordinary global; `config` is a context.
int plain = 1;
int config = 1;
int get_config() { return config; }
void set_config(int v) { config = v; }

// A context whose setter counts its calls in the process it runs in.
int counted = 0;
int counted_sets = 0;
int get_counted() { return counted; }
void set_counted(int v) {
    counted = v;
    ++counted_sets;
}

// The registry-on-import pattern: importing a module appends its callbacks to a process-wide list. A task that
// does so changes the state every later task of its worker sees.
std::vector<std::string> handlers;
std::vector<std::string> get_handlers() { return handlers; }
void set_handlers(std::vector<std::string> v) { handlers = std::move(v); }

long worker_pid() { return ppt::pid(); }
std::pair<int, int> plain_and_config() { return {plain, config}; }
std::pair<long, int> pid_and_config() { return {ppt::pid(), config}; }
std::pair<long, int> pid_and_counted_sets() { return {ppt::pid(), counted_sets}; }
int read_counted() { return counted; }
long import_plugin(std::string name) { // the polluting task
    handlers.push_back(std::move(name));
    return ppt::pid();
}
std::pair<long, std::vector<std::string>> pid_and_handlers() { return {ppt::pid(), handlers}; }
void die(int code) { std::_Exit(code); }

/// Restores every global above at the end of a scope (in_process and fork pools share or copy them).
struct restore_globals {
    restore_globals() { reset(); }
    ~restore_globals() { reset(); }
    static void reset() {
        plain = config = 1;
        counted = counted_sets = 0;
        handlers.clear();
    }
};

/// Collects the parent's log events at level info; restores the level and the default sink after.
class log_capture {
public:
    log_capture() : old_level_(procpool::get_log_level()) {
        procpool::set_log_level(procpool::log_level::info);
        procpool::set_log_sink([this](const procpool::log_event& ev) {
            std::lock_guard lock(mutex_);
            messages_.push_back(ev.message);
        });
    }
    ~log_capture() {
        procpool::set_log_sink({});
        procpool::set_log_level(old_level_);
    }
    log_capture(const log_capture&) = delete;
    log_capture& operator=(const log_capture&) = delete;
    /// The messages that contain `part`.
    std::vector<std::string> matching(const std::string& part) {
        std::lock_guard lock(mutex_);
        std::vector<std::string> out;
        for (auto& m : messages_)
            if (m.find(part) != std::string::npos) out.push_back(m);
        return out;
    }

private:
    procpool::log_level old_level_;
    std::mutex mutex_;
    std::vector<std::string> messages_;
};


} // namespace ctx_t

PROCPOOL_CONTEXT("ctx_t.config", ctx_t::get_config, ctx_t::set_config);
PROCPOOL_CONTEXT("ctx_t.counted", ctx_t::get_counted, ctx_t::set_counted);
PROCPOOL_CONTEXT("ctx_t.handlers", ctx_t::get_handlers, ctx_t::set_handlers);

PROCPOOL_TASK(ctx_t::worker_pid);
PROCPOOL_TASK(ctx_t::plain_and_config);
PROCPOOL_TASK(ctx_t::pid_and_config);
PROCPOOL_TASK(ctx_t::pid_and_counted_sets);
PROCPOOL_TASK(ctx_t::read_counted);
PROCPOOL_TASK(ctx_t::import_plugin);
PROCPOOL_TASK(ctx_t::pid_and_handlers);
PROCPOOL_TASK(ctx_t::die);

using namespace ctx_t;
using procpool::leak_policy;
using procpool::start_method;

TEST_CASE("a context set at run time in the parent is seen by workers under every start method", "[context]") {
    std::vector<std::pair<std::string, std::pair<int, int>>> seen;
    for (auto method : ppt::all_methods) {
        restore_globals restore;
        procpool::pool p{{.workers = 1, .start = method}};
        plain = 42; // after the pool was constructed: no worker process can have inherited either value
        config = 42;
        seen.emplace_back(ppt::name(method), p.submit<plain_and_config>().get());
    }
    for (auto& [name, v] : seen) {
        std::printf("contexts: the parent set a plain global and a context global from 1 to 42 at run time; a %s "
                    "worker sees plain = %d, context = %d\n",
                    name.c_str(), v.first, v.second);
    }
    std::fflush(stdout);
    std::vector<std::pair<std::string, std::pair<int, int>>> expected{
        {"spawn", {1, 42}}}; // a fresh image, static initialisation only, plus contexts
#if PROCPOOL_POSIX // Windows has neither fork nor forkserver
    expected.push_back({"fork", {1, 42}});       // a copy of the parent as it was at construction
    expected.push_back({"forkserver", {1, 42}}); // forked from a fresh image
#endif
    expected.push_back({"in_process", {42, 42}}); // the parent itself, live
    CHECK(seen == expected);
}

TEST_CASE("each task sees the context values of its submit, not of its run", "[context]") {
    for (auto method : ppt::all_methods) {
        INFO(ppt::name(method));
        restore_globals restore;
        procpool::pool p{{.workers = 1, .start = method}};
        config = 10;
        auto f1 = p.submit<pid_and_config>();
        config = 20;
        auto f2 = p.submit<pid_and_config>();
        config = 30; // with one worker, this one waits in the queue behind the others
        auto f3 = p.submit<pid_and_config>();
        config = 40; // after every submit: seen by none of them
        auto r1 = f1.get();
        auto r2 = f2.get();
        auto r3 = f3.get();
        CHECK(r1.second == 10);
        CHECK(r2.second == 20);
        CHECK(r3.second == 30);
        CHECK(r1.first == r2.first); // one worker ran all three, with the value changed between tasks
        CHECK(r2.first == r3.first);
        CHECK(p.submit<pid_and_config>().get().second == 40);
        // map chunks carry the values of their submit too
        config = 50;
        CHECK(p.map<pid_and_config>(std::vector<std::tuple<>>(3), 1) ==
              std::vector<std::pair<long, int>>(3, {r1.first, 50}));
    }
}

TEST_CASE("a worker that already has a context's value does not get it again", "[context]") {
    for (auto method : ppt::process_methods) {
        INFO(ppt::name(method));
        restore_globals restore;
        procpool::pool p{{.workers = 1, .start = method}};
        counted = 5;
        auto sets = [&] { return p.submit<pid_and_counted_sets>().get().second; };
        CHECK(sets() == 1); // the first task of a worker gets every context once
        CHECK(sets() == 1); // unchanged: not applied again
        CHECK(sets() == 1);
        config = 7; // another context changed: only that one is sent
        CHECK(sets() == 1);
        CHECK(p.submit<pid_and_config>().get().second == 7);
        counted = 6;
        CHECK(sets() == 2);
        CHECK(p.submit<read_counted>().get() == 6);
        counted = 5; // back to an earlier value: still a change for this worker
        CHECK(sets() == 3);
        CHECK(sets() == 3);
        CHECK(p.map<read_counted>(std::vector<std::tuple<>>(4), 1) == std::vector<int>(4, 5));
        CHECK(sets() == 3);
        CHECK(counted_sets == 0); // the parent's getter is read, its setter never called
    }
    SECTION("in_process: tasks see the live value, no setter runs") {
        restore_globals restore;
        procpool::pool p{{.workers = 1, .start = start_method::in_process}};
        counted = 8;
        CHECK(p.submit<read_counted>().get() == 8);
        CHECK(p.submit<pid_and_counted_sets>().get() == std::pair{ppt::pid(), 0});
    }
}

TEST_CASE("a replacement worker gets the current context values", "[context]") {
    for (auto method : ppt::process_methods) {
        INFO(ppt::name(method));
        SECTION(std::string("after a crash: ") + ppt::name(method)) {
            restore_globals restore;
            procpool::pool p{{.workers = 1, .start = method}};
            config = 77;
            counted = 3;
            auto [first_pid, v1] = p.submit<pid_and_config>().get();
            CHECK(v1 == 77);
            CHECK_THROWS_AS(p.submit<die>(9).get(), procpool::worker_died);
            // Nothing changed in the parent since the last submit; the new worker still gets every value.
            auto [second_pid, v2] = p.submit<pid_and_config>().get();
            CHECK(second_pid != first_pid);
            CHECK(v2 == 77);
            CHECK(p.submit<read_counted>().get() == 3);
            CHECK(p.submit<pid_and_counted_sets>().get() == std::pair{second_pid, 1});
            config = 78;
            CHECK(p.submit<pid_and_config>().get() == std::pair{second_pid, 78});
        }
        SECTION(std::string("after recycling: ") + ppt::name(method)) {
            restore_globals restore;
            procpool::pool p{{.workers = 1, .start = method, .max_tasks_per_worker = 1}};
            config = 55;
            counted = 4;
            std::set<long> pids;
            for (int i = 0; i < 4; ++i) {
                auto [pid, v] = p.submit<pid_and_config>().get();
                CHECK(v == 55);
                pids.insert(pid);
                auto [pid2, n] = p.submit<pid_and_counted_sets>().get();
                CHECK(n == 1); // each new worker got the value once
                pids.insert(pid2);
            }
            CHECK(pids.size() == 8); // every task in a new worker
        }
    }
}

TEST_CASE("leak audit log: the polluting task is named and the next task sees the parent's value again",
          "[context]") {
    for (auto method : ppt::process_methods) {
        INFO(ppt::name(method));
        restore_globals restore;
        log_capture logs;
        procpool::pool p{{.workers = 1, .start = method, .leak_audit = leak_policy::log}};
        handlers = {"builtin"};
        auto [pid0, before] = p.submit<pid_and_handlers>().get();
        CHECK(before == std::vector<std::string>{"builtin"});
        CHECK(logs.matching("leak audit").empty());
        long polluter = p.submit<import_plugin>(std::string("plugin_x")).get();
        CHECK(polluter == pid0);
        auto found = logs.matching("leak audit");
        REQUIRE(found.size() == 1);
        CHECK_THAT(found[0], ppt::has_substring("\"ctx_t::import_plugin\""));
        CHECK_THAT(found[0], ppt::has_substring("\"ctx_t.handlers\""));
        CHECK_THAT(found[0], ppt::has_substring("worker pid " + std::to_string(polluter)));
        if (method == start_method::spawn) {
            std::printf("leak audit (leak_policy::log) reported: %s\n", found[0].c_str());
            std::fflush(stdout);
        }
        // The audit made the pool forget what this worker has: the next task gets the parent's list again.
        auto [pid1, after] = p.submit<pid_and_handlers>().get();
        CHECK(pid1 == polluter);
        CHECK(after == std::vector<std::string>{"builtin"});
        CHECK(logs.matching("leak audit").size() == 1); // restoring it is not a leak
    }
}

TEST_CASE("leak audit log: a task queued behind the polluting one sees the parent's value", "[context]") {
    for (auto method : ppt::process_methods) {
        INFO(ppt::name(method));
        restore_globals restore;
        log_capture logs;
        procpool::pool p{{.workers = 1, .start = method, .leak_audit = leak_policy::log}};
        handlers = {"builtin"};
        // Both submitted before either result: the second is dispatched while the first may still run.
        auto polluting = p.submit<import_plugin>(std::string("plugin_y"));
        auto next = p.submit<pid_and_handlers>();
        long polluter = polluting.get();
        auto [pid, after] = next.get();
        CHECK(pid == polluter);
        CHECK(after == std::vector<std::string>{"builtin"});
        CHECK(logs.matching("leak audit").size() == 1);
    }
}

TEST_CASE("leak audit fail: the polluting task fails with state_leak naming it", "[context]") {
    for (auto method : ppt::process_methods) {
        INFO(ppt::name(method));
        restore_globals restore;
        procpool::pool p{{.workers = 1, .start = method, .leak_audit = leak_policy::fail}};
        handlers = {"builtin"};
        long pid0 = p.submit<worker_pid>().get();
        auto polluting = p.submit<import_plugin>(std::string("plugin_x"));
        auto next = p.submit<pid_and_handlers>(); // queued behind it: must not run in the polluted worker
        try {
            (void)polluting.get();
            FAIL("import_plugin did not fail");
        } catch (const procpool::state_leak& e) {
            std::string what = e.what();
            CHECK_THAT(what, ppt::has_substring("task \"ctx_t::import_plugin\""));
            CHECK_THAT(what, ppt::has_substring("\"ctx_t.handlers\""));
            CHECK_THAT(what, ppt::has_substring("worker pid " + std::to_string(pid0)));
        }
        auto [pid1, after] = next.get();
        CHECK(pid1 != pid0); // the polluted worker was retired
        CHECK(after == std::vector<std::string>{"builtin"});
        CHECK(p.submit<worker_pid>().get() == pid1);
    }
}

TEST_CASE("leak audit retire: the task after the polluting one runs in a fresh worker", "[context]") {
    for (auto method : ppt::process_methods) {
        INFO(ppt::name(method));
        restore_globals restore;
        log_capture logs;
        procpool::pool p{{.workers = 1, .start = method, .leak_audit = leak_policy::retire}};
        handlers = {"builtin"};
        long polluter = p.submit<import_plugin>(std::string("plugin_x")).get(); // its result is kept
        CHECK(logs.matching("leak audit").size() == 1);
        auto [pid1, after] = p.submit<pid_and_handlers>().get();
        CHECK(pid1 != polluter);
        CHECK(after == std::vector<std::string>{"builtin"});
        // Also when the next task was submitted before the polluting one finished.
        auto polluting = p.submit<import_plugin>(std::string("plugin_z"));
        auto next = p.submit<pid_and_handlers>();
        long polluter2 = polluting.get();
        CHECK(polluter2 == pid1);
        auto [pid2, after2] = next.get();
        CHECK(pid2 != polluter2);
        CHECK(after2 == std::vector<std::string>{"builtin"});
    }
}

TEST_CASE("leak audit off: nothing is reported and the leaked value stays in the worker", "[context]") {
    for (auto method : ppt::process_methods) {
        INFO(ppt::name(method));
        restore_globals restore;
        log_capture logs;
        procpool::pool p{{.workers = 1, .start = method}}; // leak_audit defaults to off
        handlers = {"builtin"};
        long polluter = p.submit<import_plugin>(std::string("plugin_x")).get();
        auto [pid1, after] = p.submit<pid_and_handlers>().get();
        CHECK(pid1 == polluter);
        CHECK(after == std::vector<std::string>{"builtin", "plugin_x"}); // the classic leak
        CHECK(logs.matching("leak audit").empty());
    }
    SECTION("in_process: the task runs in the parent and changes its state (there is no worker to audit)") {
        restore_globals restore;
        log_capture logs;
        procpool::pool p{{.start = start_method::in_process, .leak_audit = leak_policy::log}};
        handlers = {"builtin"};
        CHECK(p.submit<import_plugin>(std::string("plugin_x")).get() == ppt::pid());
        CHECK(handlers == std::vector<std::string>{"builtin", "plugin_x"});
        CHECK(logs.matching("leak audit").empty());
    }
}
