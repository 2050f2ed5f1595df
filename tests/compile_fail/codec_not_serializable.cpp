// expect: this type is not serializable
// SPDX-License-Identifier: BSL-1.0
// A class with private state and no codec customization point is refused.
#include <procpool/codec.hpp>

class account {
public:
    explicit account(long balance) : balance_(balance) {}
    [[nodiscard]] long balance() const { return balance_; }

private:
    long balance_;
};

int main() {
    auto bytes = procpool::encode(account(100));
    return static_cast<int>(bytes.size());
}
