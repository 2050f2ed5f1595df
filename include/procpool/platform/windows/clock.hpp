// SPDX-License-Identifier: BSL-1.0
// procpool/platform/windows/clock.hpp: a monotonic clock in milliseconds, and sleeping.
#ifndef PROCPOOL_PLATFORM_WINDOWS_CLOCK_HPP
#define PROCPOOL_PLATFORM_WINDOWS_CLOCK_HPP

#include <procpool/config.hpp>
#include <procpool/platform/windows/win32.hpp>

#include <cstdint>

PROCPOOL_BEGIN_NAMESPACE
namespace platform {

/// Milliseconds on a monotonic clock.
inline std::int64_t now_ms() noexcept {
    static const LONGLONG freq = [] {
        LARGE_INTEGER f;
        ::QueryPerformanceFrequency(&f);
        return f.QuadPart;
    }();
    LARGE_INTEGER c;
    ::QueryPerformanceCounter(&c);
    return static_cast<std::int64_t>(c.QuadPart / freq * 1000 + c.QuadPart % freq * 1000 / freq);
}

/// Sleeps for `ms` milliseconds.
inline void sleep_for_ms(int ms) noexcept { ::Sleep(static_cast<DWORD>(ms)); }

} // namespace platform
PROCPOOL_END_NAMESPACE

#endif // PROCPOOL_PLATFORM_WINDOWS_CLOCK_HPP
