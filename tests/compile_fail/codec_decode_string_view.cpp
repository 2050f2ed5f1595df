// expect: does not own its data and cannot cross a process boundary
// SPDX-License-Identifier: BSL-1.0
// Decoding into a std::string_view is refused too: the decoder checks its type the same way as the encoder.
#include <procpool/codec.hpp>

#include <string>
#include <string_view>
#include <vector>

int main() {
    std::vector<std::byte> bytes(8);
#ifdef FIXED
    auto name = procpool::decode<std::string>(procpool::encode(std::string("owned")));
#else
    auto name = procpool::decode<std::string_view>(bytes);
#endif
    return static_cast<int>(name.size());
}
