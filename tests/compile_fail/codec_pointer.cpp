// expect: a pointer cannot cross a process boundary
// SPDX-License-Identifier: BSL-1.0
// Encoding a raw pointer is refused: the address means nothing in another process.
#include <procpool/codec.hpp>

int main() {
    int value = 42;
    int* ptr = &value;
#ifdef FIXED
    auto bytes = procpool::encode(*ptr);
#else
    auto bytes = procpool::encode(ptr);
#endif
    return static_cast<int>(bytes.size());
}
