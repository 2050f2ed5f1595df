// SPDX-License-Identifier: BSL-1.0
// procpool/platform/posix/shared_mapping.hpp: memory a process shares by handle (shared_buffer): anonymous memory
// as a descriptor (Linux: memfd; elsewhere: shm_open, unlinked at once), a file's contents, mapping them, and
// channel reads and writes that carry descriptors along with their bytes (SCM_RIGHTS).
#ifndef PROCPOOL_PLATFORM_POSIX_SHARED_MAPPING_HPP
#define PROCPOOL_PLATFORM_POSIX_SHARED_MAPPING_HPP

#include <procpool/config.hpp>
#include <procpool/platform/types.hpp>
#include <procpool/platform/posix/channel.hpp>
#include <procpool/platform/posix/errors.hpp>
#include <procpool/platform/posix/fd_passing.hpp>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/syscall.h>
#endif

PROCPOOL_BEGIN_NAMESPACE
namespace platform {

/// What names shared memory in this process: a descriptor here.
using shm_object = native_handle;
inline constexpr shm_object invalid_shm_object = invalid_handle;
/// Whether shared memory can be handed to a worker (descriptor passing).
inline constexpr bool can_share_with_workers = true;

/// New anonymous shared memory of `bytes`, as a descriptor no other process can open by name. \throws
/// std::system_error.
inline shm_object create_shared_memory(std::size_t bytes) {
#if defined(__linux__)
    // A memfd has no name in any file system: it lives while a descriptor or a mapping of it does, in any process,
    // and no longer (nothing to unlink, nothing left in /dev/shm after a crash).
    int fd = static_cast<int>(::syscall(SYS_memfd_create, "procpool-shm", 1u /* MFD_CLOEXEC */));
    if (fd < 0) throw_errno("memfd_create");
#else
    // A name exists only between shm_open and shm_unlink, here, before anyone else sees the descriptor.
    static std::atomic<unsigned> counter{0};
    int fd = -1;
    for (int attempt = 0; fd < 0 && attempt < 100; ++attempt) {
        char name[64];
        std::snprintf(name, sizeof name, "/procpool-%ld-%u", static_cast<long>(::getpid()), counter.fetch_add(1));
        fd = ::shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
        if (fd >= 0) ::shm_unlink(name);
        else if (errno != EEXIST) throw_errno("shm_open");
    }
    if (fd < 0) throw_errno("shm_open");
    set_cloexec(fd);
#endif
    if (::ftruncate(fd, static_cast<off_t>(bytes)) != 0) {
        int e = errno;
        ::close(fd);
        errno = e;
        throw_errno("ftruncate");
    }
    return fd;
}

/// Opens a file to map it; its size in `bytes`. \throws std::system_error.
inline shm_object open_file_for_mapping(const std::string& path, bool writable, std::size_t& bytes) {
    int fd = ::open(path.c_str(), (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC);
    const std::string what = "open " + path;
    if (fd < 0) throw_errno(what.c_str());
    struct stat st{};
    if (::fstat(fd, &st) != 0) {
        ::close(fd);
        throw_errno(what.c_str());
    }
    bytes = static_cast<std::size_t>(st.st_size);
    return fd;
}

/// A read-only descriptor of the same memory (Linux), so that the process it is given to cannot map it writable
/// or make its read-only mapping writable (mprotect fails without write access to the file); else a duplicate.
inline shm_object read_only_handle(shm_object fd) {
#if defined(__linux__)
    char path[64];
    std::snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    int ro = ::open(path, O_RDONLY | O_CLOEXEC);
    if (ro >= 0) return ro;
#endif
    int d = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (d < 0) throw_errno("dup");
    return d;
}

/// The size of the memory behind `fd`, or -1.
inline long long shared_memory_size(shm_object fd) noexcept {
    struct stat st{};
    if (::fstat(fd, &st) != 0) return -1;
    return static_cast<long long>(st.st_size);
}

/// Maps `bytes` of `fd` shared, writable or not. Not inherited by fork() (a fork template must not keep it alive)
/// unless `inherited`: a per-task worker's mappings are its task processes' too. Null for zero bytes.
/// \throws std::system_error.
inline void* map_shared_memory(shm_object fd, std::size_t bytes, bool writable, bool inherited = false) {
    if (bytes == 0) return nullptr;
    void* p = ::mmap(nullptr, bytes, writable ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) throw_errno("mmap");
#if defined(MADV_DONTFORK)
    if (!inherited) ::madvise(p, bytes, MADV_DONTFORK);
#else
    (void)inherited;
#endif
    return p;
}

inline void unmap_shared_memory(void* p, std::size_t bytes) noexcept {
    if (p) ::munmap(p, bytes);
}

inline void close_shared_memory(shm_object fd) noexcept {
    if (fd >= 0) ::close(fd);
}

/// Like write_some, with `fds` sent along with the first byte taken (SCM_RIGHTS; at most 250).
inline long write_some_with_handles(native_handle sock, const native_handle* fds, std::size_t count, const void* data,
                                    std::size_t n) noexcept {
    if (count == 0) return write_some(sock, data, n);
    if (count > 250) return -1;
    iovec iov{const_cast<void*>(data), n};
    std::vector<cmsghdr> ctl(CMSG_SPACE(count * sizeof(int)) / sizeof(cmsghdr) + 1); // aligned for cmsghdr
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    attach_descriptors(msg, ctl.data(), fds, count);
    for (;;) {
        auto r = ::sendmsg(sock, &msg, send_flags | MSG_DONTWAIT);
        if (r >= 0) return static_cast<long>(r);
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) return 0;
        return -1;
    }
}

/// Like read_some (or read_some_blocking with `block`), keeping the descriptors that came with the bytes in `fds`
/// (in order). `dropped` is set when the system dropped some (this process has too many open).
inline long read_some_with_handles(native_handle sock, void* data, std::size_t n, bool block,
                                   std::vector<native_handle>& fds, bool& dropped) noexcept {
    iovec iov{data, n};
    alignas(cmsghdr) char ctl[CMSG_SPACE(64 * sizeof(int))];
    for (;;) {
        msghdr msg{};
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = ctl;
        msg.msg_controllen = sizeof ctl;
        int flags = block ? 0 : MSG_DONTWAIT;
#if defined(MSG_CMSG_CLOEXEC)
        flags |= MSG_CMSG_CLOEXEC;
#endif
        auto r = ::recvmsg(sock, &msg, flags);
        if (r < 0) {
            if (errno == EINTR) continue;
            if (!block && (errno == EAGAIN || errno == EWOULDBLOCK)) return 0;
            return -1;
        }
        if (msg.msg_flags & MSG_CTRUNC) dropped = true;
        for_each_descriptor(msg, [&](native_handle fd) { fds.push_back(fd); });
        return r == 0 ? -1 : static_cast<long>(r);
    }
}

} // namespace platform
PROCPOOL_END_NAMESPACE

#endif // PROCPOOL_PLATFORM_POSIX_SHARED_MAPPING_HPP
