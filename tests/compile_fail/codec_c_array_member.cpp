// expect: a C array is not serializable
// SPDX-License-Identifier: BSL-1.0
// An aggregate with a C array member is refused with procpool's message, not a Boost.PFR error.
#include <procpool/codec.hpp>

#include <array>

struct sample {
    int id;
#ifdef FIXED
    std::array<double, 4> readings;
#else
    double readings[4];
#endif
};

int main() {
    auto bytes = procpool::encode(sample{1, {1.0, 2.0, 3.0, 4.0}});
    return static_cast<int>(bytes.size());
}
