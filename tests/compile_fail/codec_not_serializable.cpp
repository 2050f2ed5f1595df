// expect: this type is not serializable
// SPDX-License-Identifier: BSL-1.0
// A class with private state and no codec customization point is refused.
#include <procpool/codec.hpp>

class account {
public:
#ifdef FIXED
    explicit account(long balance) : balance_(balance) {}
    void procpool_encode(procpool::writer& w) const { w.write(balance_); }
    static account procpool_decode(procpool::reader& r) { return account(r.read<long>()); }
#else
    explicit account(long balance) : balance_(balance) {}
#endif
    [[nodiscard]] long balance() const { return balance_; }

private:
    long balance_;
};

int main() {
    auto bytes = procpool::encode(account(100));
    return static_cast<int>(bytes.size());
}
