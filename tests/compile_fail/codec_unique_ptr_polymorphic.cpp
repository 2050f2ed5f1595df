// expect: unique_ptr is serializable only to a non-array, non-polymorphic serializable type
// SPDX-License-Identifier: BSL-1.0
// A unique_ptr to a polymorphic base is refused: the decoder could only rebuild the base, slicing the object.
#include <procpool/codec.hpp>

#include <memory>

#ifdef FIXED
struct shape {
    double area = 0;
};
#else
struct shape {
    virtual ~shape() = default;
    double area = 0;
};
#endif

int main() {
    std::unique_ptr<shape> s = std::make_unique<shape>();
    auto bytes = procpool::encode(s);
    return static_cast<int>(bytes.size());
}
