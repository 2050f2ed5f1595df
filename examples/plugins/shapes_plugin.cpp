// SPDX-License-Identifier: BSL-1.0
// examples/plugins/shapes_plugin.cpp: a plugin: a shared library whose tasks the host loads at run time.
#include "shapes.hpp"

#include <procpool/procpool.hpp>

namespace shapes {
double area(circle c) { return 3.141592653589793 * c.radius * c.radius; }
std::string label(circle c) { return "circle of radius " + std::to_string(c.radius); }
} // namespace shapes

PROCPOOL_TASK(shapes::area);
PROCPOOL_TASK(shapes::label);
PROCPOOL_PLUGIN(); // the entry point load_plugin calls: registers these tasks in the host
