// expect: a container of empty elements
// SPDX-License-Identifier: BSL-1.0
// A counted container of elements that encode to nothing is refused: no input could bound its count.
#include <procpool/codec.hpp>

#include <variant>
#include <vector>

int main() {
#ifdef FIXED
    auto bytes = procpool::encode(std::vector<int>(3));
#else
    auto bytes = procpool::encode(std::vector<std::monostate>(3));
#endif
    return static_cast<int>(bytes.size());
}
