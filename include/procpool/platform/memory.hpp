// SPDX-License-Identifier: BSL-1.0
// procpool/platform/memory.hpp: memory hints (kept apart from posix.hpp / windows.hpp: the codec needs only this).
#ifndef PROCPOOL_PLATFORM_MEMORY_HPP
#define PROCPOOL_PLATFORM_MEMORY_HPP

#include <procpool/config.hpp>

#include <cstddef>
#include <cstdint>

#if defined(__linux__)
#include <sys/mman.h>
#endif

PROCPOOL_BEGIN_NAMESPACE

namespace platform {

/// Asks for transparent huge pages on the whole pages inside [p, p + bytes), before they are first touched: a
/// large buffer then costs one page fault per 2 MiB instead of one per 4 KiB (several times cheaper to fill on
/// the machines measured). A hint: a no-op where unsupported, and the kernel may decline.
inline void advise_huge_pages([[maybe_unused]] void* p, [[maybe_unused]] std::size_t bytes) noexcept {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    constexpr std::uintptr_t page = 4096;
    auto first = (reinterpret_cast<std::uintptr_t>(p) + page - 1) & ~(page - 1);
    auto last = (reinterpret_cast<std::uintptr_t>(p) + bytes) & ~(page - 1);
    if (last > first) ::madvise(reinterpret_cast<void*>(first), last - first, MADV_HUGEPAGE);
#endif
}

} // namespace platform

PROCPOOL_END_NAMESPACE

#endif // PROCPOOL_PLATFORM_MEMORY_HPP
