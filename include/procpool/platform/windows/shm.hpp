// SPDX-License-Identifier: BSL-1.0
// procpool/platform/windows/shm.hpp: the result ring is POSIX (Linux) only: results travel over the pipe here.
#ifndef PROCPOOL_PLATFORM_WINDOWS_SHM_HPP
#define PROCPOOL_PLATFORM_WINDOWS_SHM_HPP

#include <procpool/config.hpp>
#include <procpool/platform/types.hpp>
#include <procpool/platform/windows/win32.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>

PROCPOOL_BEGIN_NAMESPACE
namespace platform {

inline constexpr bool has_result_ring = false;
inline constexpr std::size_t ring_control_bytes = 4096;
inline native_handle create_ring_memory(std::size_t) noexcept { return invalid_handle; }
inline void* map_ring(native_handle, std::size_t) noexcept { return nullptr; }
inline void unmap_ring(void*, std::size_t) noexcept {}
inline void wait_on_shared(std::atomic<std::uint32_t>&, std::uint32_t, int) noexcept {}
inline void wake_shared(std::atomic<std::uint32_t>&) noexcept {}

} // namespace platform
PROCPOOL_END_NAMESPACE

#endif // PROCPOOL_PLATFORM_WINDOWS_SHM_HPP
