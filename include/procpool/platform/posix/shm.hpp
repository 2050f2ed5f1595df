// SPDX-License-Identifier: BSL-1.0
// procpool/platform/posix/shm.hpp: memory shared with a worker for its result ring (Linux: a sealed memfd mapped
// twice in a row), and waiting on a word in it (futex). Elsewhere has_result_ring is false and these do nothing.
#ifndef PROCPOOL_PLATFORM_POSIX_SHM_HPP
#define PROCPOOL_PLATFORM_POSIX_SHM_HPP

#include <procpool/config.hpp>
#include <procpool/platform/types.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>

#if defined(__linux__)
#include <fcntl.h>
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>
#endif

PROCPOOL_BEGIN_NAMESPACE
namespace platform {

/// Whether this system has the shared-memory result ring (Linux); without it results travel over the channel.
#if defined(__linux__)
inline constexpr bool has_result_ring = true;
#else
inline constexpr bool has_result_ring = false;
#endif

/// Bytes of the ring's control page, mapped before its data.
inline constexpr std::size_t ring_control_bytes = 4096;

/// Anonymous shared memory of ring_control_bytes + `bytes`, as a descriptor; invalid_handle where unsupported.
inline native_handle create_ring_memory([[maybe_unused]] std::size_t bytes) noexcept {
#if defined(__linux__)
    // Sealed at its size: a worker that reopens it (/proc/<pid>/map_files) cannot shrink it under the parent's
    // mapping, which would kill the parent with SIGBUS.
    int fd = static_cast<int>(::syscall(SYS_memfd_create, "procpool-results", 1u /* MFD_CLOEXEC */ | 2u /* MFD_ALLOW_SEALING */));
    if (fd < 0) return invalid_handle;
    constexpr int seals = 0x0002 /* F_SEAL_SHRINK */ | 0x0004 /* F_SEAL_GROW */ | 0x0001 /* F_SEAL_SEAL */;
    if (::ftruncate(fd, static_cast<off_t>(ring_control_bytes + bytes)) != 0 ||
        ::fcntl(fd, 1033 /* F_ADD_SEALS */, seals) != 0) {
        ::close(fd);
        return invalid_handle;
    }
    return fd;
#else
    return invalid_handle;
#endif
}

/// Maps the memory of create_ring_memory: the control page, then the data twice in a row, so that a record
/// that wraps around the end reads and writes as one span. Null if `fd` is not such memory of that size.
inline void* map_ring([[maybe_unused]] native_handle fd, [[maybe_unused]] std::size_t bytes) noexcept {
#if defined(__linux__)
    struct stat st{};
    if (bytes == 0 || bytes % 4096 || ::fstat(fd, &st) != 0 ||
        static_cast<std::size_t>(st.st_size) != ring_control_bytes + bytes)
        return nullptr;
    const std::size_t whole = ring_control_bytes + 2 * bytes;
    void* base = ::mmap(nullptr, whole, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, invalid_handle, 0);
    if (base == MAP_FAILED) return nullptr;
    auto* b = static_cast<char*>(base);
    if (::mmap(b, ring_control_bytes + bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0) == MAP_FAILED ||
        ::mmap(b + ring_control_bytes + bytes, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd,
               static_cast<off_t>(ring_control_bytes)) == MAP_FAILED) {
        ::munmap(base, whole);
        return nullptr;
    }
    // Not inherited by fork: a fork template (or a process a task forks) has no business with this worker's ring.
    ::madvise(base, whole, MADV_DONTFORK);
    return base;
#else
    return nullptr;
#endif
}

inline void unmap_ring([[maybe_unused]] void* base, [[maybe_unused]] std::size_t bytes) noexcept {
#if defined(__linux__)
    if (base) ::munmap(base, ring_control_bytes + 2 * bytes);
#endif
}

/// Blocks while `word` (in memory shared between processes) holds `expected`, for at most timeout_ms.
inline void wait_on_shared([[maybe_unused]] std::atomic<std::uint32_t>& word, [[maybe_unused]] std::uint32_t expected,
                           [[maybe_unused]] int timeout_ms) noexcept {
#if defined(__linux__)
    static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t));
    timespec ts{timeout_ms / 1000, static_cast<long>(timeout_ms % 1000) * 1000000L};
    ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAIT, expected, &ts, nullptr, 0);
#endif
}

/// Wakes the waiters of wait_on_shared on `word`.
inline void wake_shared([[maybe_unused]] std::atomic<std::uint32_t>& word) noexcept {
#if defined(__linux__)
    ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAKE, 1, nullptr, nullptr, 0);
#endif
}

} // namespace platform
PROCPOOL_END_NAMESPACE

#endif // PROCPOOL_PLATFORM_POSIX_SHM_HPP
