// SPDX-License-Identifier: BSL-1.0
// tests/plugin_test.cpp: tasks from a plugin loaded at run time, in parent and workers, typed and by name.
#include "catch.hpp"
#include "plugins/geo_plugin.hpp"
#include "test_tasks.hpp"

#include <procpool/procpool.hpp>

#include <algorithm>
#include <cstdio>
#include <string>

#ifndef PROCPOOL_TEST_PLUGIN
#error "the build passes the path of the test plugin as PROCPOOL_TEST_PLUGIN"
#endif

namespace {
std::string contains(const std::string& what, const std::string& part) {
    return what.find(part) != std::string::npos ? "yes" : what;
}
} // namespace

TEST_CASE("load_plugin refuses a missing file and a library that is not a plugin", "[plugin]") {
    CHECK_THROWS_AS(procpool::load_plugin("/nonexistent/libnothing.so"), procpool::plugin_error);
    try {
        procpool::load_plugin(PROCPOOL_TEST_NOT_A_PLUGIN);
        FAIL("load_plugin accepted a library without PROCPOOL_PLUGIN()");
    } catch (const procpool::plugin_error& e) {
        CHECK(contains(e.what(), "PROCPOOL_PLUGIN") == "yes");
    }
}

TEST_CASE("a plugin loaded after a spawn pool started reaches its live workers", "[plugin]") {
    procpool::pool pool{{.workers = 2, .start = procpool::start_method::spawn}};
    auto before = pool.worker_pids();
    bool had_plugin = !procpool::loaded_plugins().empty();
    if (!had_plugin) {
        // Unknown before the plugin is loaded: a clear error that lists what is registered and loaded.
        try {
            (void)pool.submit_by_name<double>("geo::area", geo::rect{2, 3});
            FAIL("submit_by_name found a task no one registered");
        } catch (const procpool::unknown_task& e) {
            CHECK(contains(e.what(), "geo::area") == "yes");
            CHECK(contains(e.what(), "plugins loaded: (none)") == "yes");
        }
    }
    procpool::load_plugin(PROCPOOL_TEST_PLUGIN);
    procpool::load_plugin(PROCPOOL_TEST_PLUGIN); // a second load of the same path does nothing
    CHECK(procpool::loaded_plugins().size() == 1);
    CHECK(pool.submit<geo_area>(geo::rect{2, 3}).get() == 6.0);
    CHECK(pool.submit<geo_describe>(geo::rect{2, 3}, 3).get() == "2.0x3.0");
    CHECK(pool.submit_by_name<double>("geo::area", geo::rect{4, 5}).get() == 20.0);
    auto pid = pool.submit_by_name<long>("geo::plugin_pid").get();
    CHECK(pid != procpool::platform::current_pid());
    CHECK(std::find(before.begin(), before.end(), pid) != before.end()); // the same, live worker
    std::printf("plugin task geo::plugin_pid ran in spawned worker pid %ld (parent %ld), loaded after the pool "
                "started\n",
                pid, static_cast<long>(procpool::platform::current_pid()));
}

TEST_CASE("pools started after load_plugin have the plugin's tasks under every start method", "[plugin]") {
    procpool::load_plugin(PROCPOOL_TEST_PLUGIN);
    for (auto m : ppt::all_methods) {
        procpool::pool pool{{.workers = 1, .start = m}};
        CHECK(pool.submit<geo_area>(geo::rect{1.5, 2}).get() == 3.0);
        std::vector<geo::rect> rects{{1, 1}, {2, 2}, {3, 3}};
        CHECK(pool.map<geo_area>(rects) == std::vector<double>{1, 4, 9});
        auto pid = pool.submit_by_name<long>("geo::plugin_pid").get();
        CHECK((pid == procpool::platform::current_pid()) == (m == procpool::start_method::in_process));
    }
}

TEST_CASE("a call whose signature differs from the registered one is refused before it is sent", "[plugin]") {
    procpool::load_plugin(PROCPOOL_TEST_PLUGIN);
    procpool::pool pool{{.workers = 1, .start = procpool::start_method::spawn}};
    try {
        (void)pool.submit_by_name<double>("geo::area", 3.0);
        FAIL("a by-name call with the wrong argument type was sent");
    } catch (const procpool::signature_error& e) {
        CHECK(contains(e.what(), "geo::rect") == "yes");
    }
    CHECK_THROWS_AS((void)pool.submit_by_name<int>("geo::area", geo::rect{1, 1}), procpool::signature_error);
    CHECK_THROWS_AS((void)pool.submit<geo_area_wrong>(1.0f), procpool::signature_error);
    CHECK(pool.submit<geo_area>(geo::rect{1, 1}).get() == 1.0); // the pool is unaffected
}
