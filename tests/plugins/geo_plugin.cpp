// SPDX-License-Identifier: BSL-1.0
// tests/plugins/geo_plugin.cpp: a plugin built as a shared library (-fvisibility=hidden) for the plugin tests.
#include "geo_plugin.hpp"

#include <procpool/procpool.hpp>

namespace geo {
double area(rect r) { return r.w * r.h; }
std::string describe(const rect& r, int precision) {
    return std::to_string(r.w).substr(0, static_cast<std::size_t>(precision)) + "x" +
           std::to_string(r.h).substr(0, static_cast<std::size_t>(precision));
}
long plugin_pid() { return procpool::platform::current_pid(); }
} // namespace geo

PROCPOOL_TASK(geo::area);
PROCPOOL_TASK(geo::describe);
PROCPOOL_TASK(geo::plugin_pid);
PROCPOOL_PLUGIN();
