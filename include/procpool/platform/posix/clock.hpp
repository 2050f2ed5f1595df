// SPDX-License-Identifier: BSL-1.0
// procpool/platform/posix/clock.hpp: a monotonic clock in milliseconds, and sleeping.
#ifndef PROCPOOL_PLATFORM_POSIX_CLOCK_HPP
#define PROCPOOL_PLATFORM_POSIX_CLOCK_HPP

#include <procpool/config.hpp>

#include <cerrno>
#include <cstdint>

#include <time.h>

PROCPOOL_BEGIN_NAMESPACE
namespace platform {

/// Milliseconds on a monotonic clock.
inline std::int64_t now_ms() noexcept {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

/// Sleeps for `ms` milliseconds, resuming after signals.
inline void sleep_for_ms(int ms) noexcept {
    timespec ts{ms / 1000, (ms % 1000) * 1000000L};
    while (::nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

} // namespace platform
PROCPOOL_END_NAMESPACE

#endif // PROCPOOL_PLATFORM_POSIX_CLOCK_HPP
