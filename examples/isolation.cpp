// SPDX-License-Identifier: BSL-1.0
// examples/isolation.cpp: a fresh process per task, at the price of a fork.
//
// The registry-on-import leak: a task "imports" a module that registers itself in a process-wide registry. In a
// reused worker the next task sees it (results depend on which worker a task landed on); the leak audit finds the
// task that did it; isolation_mode::per_task runs every task in a fresh fork of a warm worker (its initializer
// already run), so no task sees another's registrations. The three ways are timed: a reused worker, a new worker
// per task (max_tasks_per_worker = 1: spawn and initializer again every time), and per_task.
#include <procpool/procpool.hpp>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

static std::vector<std::string> g_registry; // filled as modules are "imported"

std::vector<std::string> get_registry() { return g_registry; }
void set_registry(std::vector<std::string> v) { g_registry = std::move(v); }
PROCPOOL_CONTEXT("example.registry", get_registry, set_registry);

/// Imports a module, which registers itself: returns how many modules the registry holds now.
int import_module(std::string name) {
    g_registry.push_back(std::move(name));
    return static_cast<int>(g_registry.size());
}
PROCPOOL_TASK(import_module);

/// Expensive set-up (loading a model, say): 20 ms.
void warm_up() { std::this_thread::sleep_for(std::chrono::milliseconds(20)); }
PROCPOOL_TASK(warm_up);

/// Runs `n` imports in `pool`; prints what the tasks saw and the time taken.
static void run(const char* label, procpool::pool& pool, int n) {
    auto t0 = std::chrono::steady_clock::now();
    std::vector<procpool::future<int>> fs;
    for (int i = 0; i < n; ++i) fs.push_back(pool.submit<import_module>("module" + std::to_string(i)));
    std::string seen;
    for (int i = 0; i < n; ++i) {
        int v = fs[static_cast<std::size_t>(i)].get();
        if (i < 5) seen += std::to_string(v) + " ";
    }
    auto ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    std::printf("%-34s registry sizes seen: %s...  %d tasks in %.0f ms\n", label, seen.c_str(), n, ms);
}

int main(int argc, char** argv) {
    procpool::serve_if_worker(argc, argv);
    constexpr int n = 40;
    const auto init = procpool::call<warm_up>();

    {
        procpool::pool reused{{.workers = 1, .start = procpool::start_method::spawn, .initializer = init}};
        run("reused worker:", reused, n);
    }
    int findings = 0;
    procpool::set_log_level(procpool::log_level::info);
    procpool::set_log_sink([&](const procpool::log_event& ev) {
        if (ev.message.find("leak audit") != std::string::npos) ++findings;
    });
    {
        procpool::pool audited{{.workers = 1,
                                .start = procpool::start_method::spawn,
                                .initializer = init,
                                .leak_audit = procpool::leak_policy::log}};
        (void)audited.submit<import_module>(std::string("numpy")).get();
    }
    procpool::set_log_sink({});
    procpool::set_log_level(procpool::log_level::off);
    std::printf("leak audit: %d task changed context \"example.registry\"\n", findings);
    {
        procpool::pool fresh{{.workers = 1,
                              .start = procpool::start_method::spawn,
                              .max_tasks_per_worker = 1,
                              .initializer = init}};
        run("new worker per task:", fresh, n);
    }
    if (!procpool::is_available(procpool::start_method::fork)) {
        std::printf("per_task isolation: not available on this platform (no fork); max_tasks_per_worker = 1 above "
                    "is the fallback\n");
        return 0;
    }
    procpool::pool isolated{{.workers = 1,
                             .start = procpool::start_method::spawn,
                             .initializer = init,
                             .isolation = procpool::isolation_mode::per_task}};
    run("per_task isolation:", isolated, n);
    return 0;
}
