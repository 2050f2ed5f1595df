// SPDX-License-Identifier: BSL-1.0
// tests/plugins/geo_plugin.hpp: what the test plugin ships to hosts: its types and task declarations.
#ifndef PROCPOOL_TESTS_GEO_PLUGIN_HPP
#define PROCPOOL_TESTS_GEO_PLUGIN_HPP
#include <procpool/plugin.hpp>
#include <string>

namespace geo {
struct rect {
    double w, h;
};
} // namespace geo

PROCPOOL_DECLARE_TASK(geo_area, "geo::area", double(geo::rect));
PROCPOOL_DECLARE_TASK(geo_describe, "geo::describe", std::string(const geo::rect&, int));
// A declaration that does not match what the plugin registered (the parameter is double, not float).
PROCPOOL_DECLARE_TASK(geo_area_wrong, "geo::area", double(float));
#endif // PROCPOOL_TESTS_GEO_PLUGIN_HPP
