// expect: std::function is not serializable
// SPDX-License-Identifier: BSL-1.0
// An aggregate with a std::function member is refused, naming std::function rather than the aggregate alone.
#include <procpool/codec.hpp>

#include <functional>
#include <string>

struct job {
    std::string name;
    std::function<int(int)> callback;
};

int main() {
    auto bytes = procpool::encode(job{"double", [](int x) { return 2 * x; }});
    return static_cast<int>(bytes.size());
}
