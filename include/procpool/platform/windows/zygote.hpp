// SPDX-License-Identifier: BSL-1.0
// procpool/platform/windows/zygote.hpp: Windows has no fork, so no per-task isolation, and procpool does not apply
// resource limits here yet (a job object could): the pool refuses both with a start_error. These names keep the
// callers portable.
#ifndef PROCPOOL_PLATFORM_WINDOWS_ZYGOTE_HPP
#define PROCPOOL_PLATFORM_WINDOWS_ZYGOTE_HPP

#include <procpool/config.hpp>
#include <procpool/platform/types.hpp>

#include <cstddef>
#include <cstdint>

PROCPOOL_BEGIN_NAMESPACE
namespace platform {

/// The limits a worker applies to itself (0: not limited). See procpool::resource_limits.
struct process_limits {
    std::uint64_t address_space = 0; ///< bytes
    std::uint64_t cpu_seconds = 0;   ///< seconds
    std::uint64_t open_files = 0;    ///< descriptors
    bool no_core_dumps = false;      ///< no core dumps
};

/// Whether this platform can apply process_limits.
inline constexpr bool has_process_limits = false;

/// No result ring here: nothing to do.
inline void inherit_ring(void*, std::size_t) noexcept {}

/// Never true here: no limit is applied.
inline bool cpu_limit_signal(const exit_status&) noexcept { return false; }

} // namespace platform
PROCPOOL_END_NAMESPACE

#endif // PROCPOOL_PLATFORM_WINDOWS_ZYGOTE_HPP
