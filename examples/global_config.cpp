// SPDX-License-Identifier: BSL-1.0
// examples/global_config.cpp: a configuration set at run time (after parsing argv) seen by spawned workers,
// through PROCPOOL_CONTEXT.
//
// A spawned worker is a fresh run of this executable: it sees the configuration as static initialisation left
// it, never what main() parsed. Registering the configuration as a context makes the pool capture it at each
// submit and apply it in the worker before the task, only when it changed.
//
//   example_global_config --unit km --precision 3
#include <procpool/procpool.hpp>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

struct settings {                 // an aggregate: serialized automatically
    std::string unit = "m";       // what static initialisation gives every process
    int precision = 0;
};
static settings g_settings;

settings get_settings() { return g_settings; }
void set_settings(settings s) { g_settings = std::move(s); }
PROCPOOL_CONTEXT("example.settings", get_settings, set_settings);

static int plain_precision = 0;   // an ordinary global, for comparison: not a context

std::string format_distance(double meters) {
    double v = g_settings.unit == "km" ? meters / 1000 : meters;
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f %s (plain global: %d)", g_settings.precision, v, g_settings.unit.c_str(),
                  plain_precision);
    return buf;
}
PROCPOOL_TASK(format_distance);

int main(int argc, char** argv) {
    procpool::serve_if_worker(argc, argv); // a spawned worker serves here: it never parses argv below

    settings parsed{"km", 2};              // defaults of the command line, which differ from static init
    for (int i = 1; i + 1 < argc; i += 2) {
        if (std::strcmp(argv[i], "--unit") == 0) parsed.unit = argv[i + 1];
        else if (std::strcmp(argv[i], "--precision") == 0) parsed.precision = std::atoi(argv[i + 1]);
    }
    g_settings = parsed;                   // run-time state of the parent
    plain_precision = parsed.precision;

    procpool::pool pool{{.workers = 2, .start = procpool::start_method::spawn}};
    auto results = pool.map<format_distance>(std::vector<double>{1234.5, 42195, 8848.86});
    for (const auto& r : results) std::printf("spawned worker: %s\n", r.c_str());

    g_settings.unit = "m";                 // changed between submits: later tasks see the new value
    std::string later = pool.submit<format_distance>(1234.5).get();
    std::printf("after the parent switched to metres: %s\n", later.c_str());

    char expect[64];
    std::snprintf(expect, sizeof expect, "%.*f %s (plain global: 0)", parsed.precision, 1234.5 / 1000,
                  parsed.unit.c_str());
    bool ok = parsed.unit != "km" || results[0] == expect;
    return ok && later.find(" m (plain global: 0)") != std::string::npos ? 0 : 1;
}
