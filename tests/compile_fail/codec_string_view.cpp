// expect: does not own its data and cannot cross a process boundary
// SPDX-License-Identifier: BSL-1.0
// A std::string_view is refused: it does not own the characters it shows.
#include <procpool/codec.hpp>

#include <string>
#include <string_view>

int main() {
    std::string_view name = "not owned";
#ifdef FIXED
    auto bytes = procpool::encode(std::string(name));
#else
    auto bytes = procpool::encode(name);
#endif
    return static_cast<int>(bytes.size());
}
