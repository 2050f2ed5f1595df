// expect: std::function is not serializable
// SPDX-License-Identifier: BSL-1.0
// An aggregate with a std::function member is refused, naming std::function rather than the aggregate alone.
#include <procpool/codec.hpp>

#include <functional>
#include <string>

struct job {
    std::string name;
#ifdef FIXED
    int factor; // the data that chooses the behaviour, not the code
#else
    std::function<int(int)> callback;
#endif
};

int main() {
#ifdef FIXED
    auto bytes = procpool::encode(job{"double", 2});
#else
    auto bytes = procpool::encode(job{"double", [](int x) { return 2 * x; }});
#endif
    return static_cast<int>(bytes.size());
}
