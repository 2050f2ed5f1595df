// SPDX-License-Identifier: BSL-1.0
// procpool/platform/posix/channel.hpp: a channel is a connected pair of Unix-domain stream sockets;
// non-blocking reads and writes for the parent, blocking ones for the worker, and poll() over many of them.
#ifndef PROCPOOL_PLATFORM_POSIX_CHANNEL_HPP
#define PROCPOOL_PLATFORM_POSIX_CHANNEL_HPP

#include <procpool/config.hpp>
#include <procpool/platform/types.hpp>
#include <procpool/platform/posix/errors.hpp>

#include <cerrno>
#include <cstddef>
#include <span>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

PROCPOOL_BEGIN_NAMESPACE
namespace platform {

/// Closes a channel end (or any descriptor); invalid_handle and other negative values are ignored.
inline void close_handle(native_handle h) noexcept {
    if (h >= 0) ::close(h);
}

/// Keeps a descriptor out of the programs this process execs (FD_CLOEXEC).
inline void set_cloexec(native_handle fd) noexcept { ::fcntl(fd, F_SETFD, ::fcntl(fd, F_GETFD) | FD_CLOEXEC); }

/// Switches O_NONBLOCK on or off.
inline void set_nonblocking(native_handle fd, bool on) {
    int flags = ::fcntl(fd, F_GETFL);
    if (flags < 0 || ::fcntl(fd, F_SETFL, on ? (flags | O_NONBLOCK) : (flags & ~O_NONBLOCK)) < 0)
        throw_errno("fcntl(O_NONBLOCK)");
}

/// A connected pair of Unix-domain stream sockets, both close-on-exec.
inline void make_channel(native_handle& a, native_handle& b) {
    int sv[2];
#if defined(SOCK_CLOEXEC)
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) throw_errno("socketpair");
#else
    if (::socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0) throw_errno("socketpair");
    set_cloexec(sv[0]);
    set_cloexec(sv[1]);
#endif
#if defined(SO_NOSIGPIPE)
    int one = 1;
    ::setsockopt(sv[0], SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof one);
    ::setsockopt(sv[1], SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof one);
#endif
    a = sv[0];
    b = sv[1];
}

#if defined(MSG_NOSIGNAL)
inline constexpr int send_flags = MSG_NOSIGNAL; // a dead peer is an error code, not a SIGPIPE
#else
inline constexpr int send_flags = 0;
#endif

/// Writes what the socket takes now. Returns bytes written (0 when it would block), -1 when the peer is gone.
inline long write_some(native_handle fd, const void* data, std::size_t n) noexcept {
    for (;;) {
        auto r = ::send(fd, data, n, send_flags | MSG_DONTWAIT);
        if (r >= 0) return static_cast<long>(r);
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) return 0;
        return -1;
    }
}

/// Reads what is available. Returns bytes read, 0 when it would block, -1 on end of stream or error.
inline long read_some(native_handle fd, void* data, std::size_t n) noexcept {
    for (;;) {
        auto r = ::recv(fd, data, n, MSG_DONTWAIT);
        if (r > 0) return static_cast<long>(r);
        if (r == 0) return -1;
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
        return -1;
    }
}

/// Blocking read of what is available, at most n bytes: waits for at least one. Returns bytes read, -1 on end of
/// stream or error (the worker side: one system call takes a frame's header and payload, or several frames).
inline long read_some_blocking(native_handle fd, void* data, std::size_t n) noexcept {
    for (;;) {
        auto r = ::recv(fd, data, n, 0);
        if (r > 0) return static_cast<long>(r);
        if (r < 0 && errno == EINTR) continue;
        return -1;
    }
}

/// Calls `io(p, n)` (a send or a recv) until all `n` bytes went through, again after EINTR. False when it returns
/// 0 (end of stream) or fails.
template <class Byte, class Io>
bool transfer_all(Byte* p, std::size_t n, Io io) noexcept {
    while (n) {
        const auto r = io(p, n);
        if (r == 0) return false;
        if (r < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        p += r;
        n -= static_cast<std::size_t>(r);
    }
    return true;
}

/// Blocking write of everything (the worker side). False when the peer is gone.
inline bool write_all(native_handle fd, const void* data, std::size_t n) noexcept {
    return transfer_all(static_cast<const char*>(data), n,
                        [fd](const char* p, std::size_t k) { return ::send(fd, p, k, send_flags); });
}

/// Blocking read of exactly n bytes. False on end of stream or error.
inline bool read_all(native_handle fd, void* data, std::size_t n) noexcept {
    return transfer_all(static_cast<char*>(data), n, [fd](char* p, std::size_t k) { return ::recv(fd, p, k, 0); });
}

/// Larger socket buffers let big frames move in fewer wake-ups.
inline void enlarge_buffers(native_handle fd, int bytes) noexcept {
    ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof bytes);
    ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes);
}

/// Waits until one item is ready or `timeout_ms` passes (-1: forever). A pool's round polls a handful of items,
/// often without waiting (the driver's spin): they go on the stack, not in an allocation per call.
inline void wait_any(std::span<poll_item> items, int timeout_ms) {
    constexpr std::size_t on_stack = 16;
    pollfd small[on_stack];
    std::vector<pollfd> large;
    pollfd* p = small;
    if (items.size() > on_stack) {
        large.resize(items.size());
        p = large.data();
    }
    for (std::size_t i = 0; i < items.size(); ++i)
        p[i] = pollfd{items[i].fd, static_cast<short>(POLLIN | (items[i].want_write ? POLLOUT : 0)), 0};
    int r;
    do r = ::poll(p, static_cast<nfds_t>(items.size()), timeout_ms);
    while (r < 0 && errno == EINTR);
    if (r < 0) throw_errno("poll");
    for (std::size_t i = 0; i < items.size(); ++i) {
        items[i].readable = p[i].revents & POLLIN;
        items[i].writable = p[i].revents & POLLOUT;
        items[i].hangup = p[i].revents & (POLLHUP | POLLERR | POLLNVAL);
    }
}

/// Whether the other end of a socket has closed it.
inline bool peer_closed(native_handle fd) noexcept {
#if defined(POLLRDHUP)
    pollfd p{fd, POLLRDHUP, 0};
#else
    pollfd p{fd, 0, 0};
#endif
    return ::poll(&p, 1, 0) > 0 && (p.revents & (POLLHUP | POLLERR
#if defined(POLLRDHUP)
                                                 | POLLRDHUP
#endif
                                                 ));
}

} // namespace platform
PROCPOOL_END_NAMESPACE

#endif // PROCPOOL_PLATFORM_POSIX_CHANNEL_HPP
