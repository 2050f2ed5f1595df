// SPDX-License-Identifier: BSL-1.0
// examples/leak_audit.cpp: the leak audit finds the task that pollutes a reused worker.
//
// The registry-on-import pattern: loading a module appends its handlers to a process-wide registry. In a pool,
// the task that loads it leaves the registry changed for every later task of the same worker, and results then
// depend on which worker a task happened to land on. With the registry as a context and
// pool_options::leak_audit = leak_policy::log, the worker re-reads every context after each task and the
// pool logs the task that changed one; the next task gets the parent's registry again.
#include <procpool/procpool.hpp>

#include <cstdio>
#include <string>
#include <vector>

static std::vector<std::string> g_codecs{"json"}; // the registry: what static initialisation registers

std::vector<std::string> get_codecs() { return g_codecs; }
void set_codecs(std::vector<std::string> v) { g_codecs = std::move(v); }
PROCPOOL_CONTEXT("example.codecs", get_codecs, set_codecs);

/// "Imports" a module that registers a codec as a side effect: the polluting task.
int decode_with_plugin(std::string plugin) {
    g_codecs.push_back(plugin);
    return static_cast<int>(g_codecs.size());
}
PROCPOOL_TASK(decode_with_plugin);

std::vector<std::string> list_codecs() { return g_codecs; }
PROCPOOL_TASK(list_codecs);

static std::string join(const std::vector<std::string>& v) {
    std::string s;
    for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
    return s;
}

int main(int argc, char** argv) {
    procpool::serve_if_worker(argc, argv);

    int findings = 0;
    procpool::set_log_level(procpool::log_level::info);
    procpool::set_log_sink([&](const procpool::log_event& ev) {
        if (ev.message.find("leak audit") == std::string::npos) return; // worker starts and exits: not shown
        ++findings;
        std::printf("log sink: %s\n", ev.message.c_str());
    });

    g_codecs.push_back("csv"); // the parent's registry at run time
    std::vector<std::string> before, after;
    {
        procpool::pool pool{{.workers = 1,
                             .start = procpool::start_method::spawn,
                             .leak_audit = procpool::leak_policy::log}};
        before = pool.submit<list_codecs>().get();
        (void)pool.submit<decode_with_plugin>(std::string("msgpack")).get();
        after = pool.submit<list_codecs>().get(); // same worker, registry restored by the pool
    }
    procpool::set_log_sink({});
    procpool::set_log_level(procpool::log_level::off);

    std::printf("registry seen by the task before: %s\n", join(before).c_str());
    std::printf("registry seen by the task after:  %s\n", join(after).c_str());
    return findings == 1 && before == g_codecs && after == g_codecs ? 0 : 1;
}
