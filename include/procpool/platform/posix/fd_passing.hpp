// SPDX-License-Identifier: BSL-1.0
// procpool/platform/posix/fd_passing.hpp: descriptors sent over a channel (SCM_RIGHTS), with a small payload.
// Used by the fork template (a new worker's channel) and to hand a worker its result ring's memory.
#ifndef PROCPOOL_PLATFORM_POSIX_FD_PASSING_HPP
#define PROCPOOL_PLATFORM_POSIX_FD_PASSING_HPP

#include <procpool/config.hpp>
#include <procpool/platform/types.hpp>
#include <procpool/platform/posix/channel.hpp>

#include <cerrno>
#include <cstddef>
#include <cstring>

#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

PROCPOOL_BEGIN_NAMESPACE
namespace platform {

/// Makes `msg` carry `count` descriptors (SCM_RIGHTS) in `ctl`, which must hold CMSG_SPACE(count * sizeof(int))
/// bytes, aligned for cmsghdr. Nothing for none.
inline void attach_descriptors(msghdr& msg, void* ctl, const native_handle* fds, std::size_t count) noexcept {
    if (count == 0) return;
    msg.msg_control = ctl;
    msg.msg_controllen = CMSG_SPACE(count * sizeof(int));
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(count * sizeof(int));
    std::memcpy(CMSG_DATA(c), fds, count * sizeof(int));
}

/// Calls `take(fd)` for each descriptor a received `msg` carries (SCM_RIGHTS), in order, made close-on-exec.
template <class Take>
void for_each_descriptor(msghdr& msg, Take&& take) noexcept {
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        const auto k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (std::size_t i = 0; i < k; ++i) {
            native_handle fd = invalid_handle;
            std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
            set_cloexec(fd);
            take(fd);
        }
    }
}

/// Sends `count` descriptors (at most 4) and a small payload over a Unix socket (SCM_RIGHTS).
inline bool send_handles(native_handle sock, const native_handle* fds, std::size_t count, const void* data,
                         std::size_t n) noexcept {
    iovec iov{const_cast<void*>(data), n};
    alignas(cmsghdr) char ctl[CMSG_SPACE(4 * sizeof(int))] = {};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    if (count > 4) return false;
    attach_descriptors(msg, ctl, fds, count);
    for (;;) {
        auto r = ::sendmsg(sock, &msg, send_flags);
        if (r == static_cast<ssize_t>(n)) return true;
        if (r < 0 && errno == EINTR) continue;
        return false;
    }
}

/// Sends one descriptor and a small payload over a Unix socket (SCM_RIGHTS).
inline bool send_handle(native_handle sock, native_handle fd, const void* data, std::size_t n) noexcept {
    return send_handles(sock, &fd, 1, data, n);
}

/// Receives exactly `n` payload bytes and the descriptors that came with them (up to `max`, at most 4; the others
/// are invalid_handle). Blocking. `dropped`: set to EMFILE when the system dropped descriptors (this process has
/// too many open), else 0.
inline bool recv_handles(native_handle sock, native_handle* fds, std::size_t max, void* data, std::size_t n,
                         int* dropped = nullptr) noexcept {
    for (std::size_t i = 0; i < max; ++i) fds[i] = invalid_handle;
    if (dropped) *dropped = 0;
    iovec iov{data, n};
    alignas(cmsghdr) char ctl[CMSG_SPACE(4 * sizeof(int))] = {};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = ctl;
    msg.msg_controllen = sizeof ctl;
    ssize_t r;
    do r = ::recvmsg(sock, &msg, 0
#if defined(MSG_CMSG_CLOEXEC)
                                     | MSG_CMSG_CLOEXEC
#endif
         );
    while (r < 0 && errno == EINTR);
    if (r <= 0) return false;
    // The kernel drops descriptors it cannot install (EMFILE) and says so with MSG_CTRUNC.
    if ((msg.msg_flags & MSG_CTRUNC) && dropped) *dropped = EMFILE;
    std::size_t got = 0;
    for_each_descriptor(msg, [&](native_handle fd) {
        if (got < max) fds[got++] = fd;
        else ::close(fd); // more than asked for: not ours to keep
    });
    if (static_cast<std::size_t>(r) < n) return read_all(sock, static_cast<char*>(data) + r, n - static_cast<std::size_t>(r));
    return true;
}

/// Receives exactly `n` payload bytes and, when one came with them, a descriptor (else invalid_handle). Blocking.
inline bool recv_handle(native_handle sock, native_handle& fd, void* data, std::size_t n) noexcept {
    return recv_handles(sock, &fd, 1, data, n);
}

} // namespace platform
PROCPOOL_END_NAMESPACE

#endif // PROCPOOL_PLATFORM_POSIX_FD_PASSING_HPP
