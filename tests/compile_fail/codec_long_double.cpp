// expect: long double has a platform-dependent width
// SPDX-License-Identifier: BSL-1.0
// long double is refused: its width differs between platforms and compilers.
#include <procpool/codec.hpp>

#include <vector>

int main() {
#ifdef FIXED
    std::vector<double> values{1.0, 2.0};
#else
    std::vector<long double> values{1.0L, 2.0L};
#endif
    auto bytes = procpool::encode(values);
    return static_cast<int>(bytes.size());
}
