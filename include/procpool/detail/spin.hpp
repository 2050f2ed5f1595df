// SPDX-License-Identifier: BSL-1.0
// procpool/detail/spin.hpp: a short, adaptive spin before a blocking wait for the other process.
#ifndef PROCPOOL_DETAIL_SPIN_HPP
#define PROCPOOL_DETAIL_SPIN_HPP

#include <procpool/config.hpp>

#include <chrono>
#include <thread>

PROCPOOL_BEGIN_NAMESPACE

namespace detail {

/// A process that blocks and is woken by its peer pays for the wake-up: on a machine whose other CPU idles, that
/// alone is ~30-35 µs per direction, several times the rest of a round trip. So a waiter that expects an answer
/// soon first polls for up to `budget`, yielding the CPU between polls (a peer on the same CPU runs at once),
/// and blocks only then. Adaptive: it spins only while its waits are short (a chatty exchange), so a process
/// whose peer is idle or slow blocks at once and burns nothing.
class adaptive_spin {
public:
    using clock = std::chrono::steady_clock;
    static constexpr auto budget = std::chrono::microseconds(PROCPOOL_SPIN_MICROSECONDS);

    /// `poll()` returns a value that converts to true when the wait is over (without blocking); `block()` waits.
    /// Returns the value of the call that ended the wait.
    template <class Poll, class Block>
    auto wait(Poll&& poll, Block&& block) {
        const auto t0 = clock::now();
        if (budget.count() > 0 && spin_) {
            do {
                if (auto r = poll()) return r;
                std::this_thread::yield();
            } while (clock::now() - t0 < budget);
        }
        auto r = block();
        spin_ = clock::now() - t0 < 2 * budget; // answered soon after the budget: worth spinning next time
        return r;
    }

private:
    bool spin_ = true;
};

} // namespace detail

PROCPOOL_END_NAMESPACE

#endif // PROCPOOL_DETAIL_SPIN_HPP
