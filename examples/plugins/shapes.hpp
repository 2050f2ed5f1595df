// SPDX-License-Identifier: BSL-1.0
// examples/plugins/shapes.hpp: what the shapes plugin ships to its hosts: types and task declarations.
#ifndef PROCPOOL_EXAMPLES_SHAPES_HPP
#define PROCPOOL_EXAMPLES_SHAPES_HPP
#include <procpool/plugin.hpp>

#include <string>

namespace shapes {
struct circle {
    double radius;
};
} // namespace shapes

// The host gets each task's stable name and signature, and every compile-time check, without its definition.
PROCPOOL_DECLARE_TASK(circle_area, "shapes::area", double(shapes::circle));
PROCPOOL_DECLARE_TASK(circle_label, "shapes::label", std::string(shapes::circle));
#endif // PROCPOOL_EXAMPLES_SHAPES_HPP
