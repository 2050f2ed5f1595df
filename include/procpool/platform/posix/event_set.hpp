// SPDX-License-Identifier: BSL-1.0
// procpool/platform/posix/event_set.hpp: one descriptor an application's event loop can wait on for a changing set
// of channels and a timeout (pool::native_handle). Linux: an epoll descriptor over the channels and a timerfd.
// Elsewhere (macOS, BSD) has_event_set is false for now: the pool says so, and poll() still works from a timer.
#ifndef PROCPOOL_PLATFORM_POSIX_EVENT_SET_HPP
#define PROCPOOL_PLATFORM_POSIX_EVENT_SET_HPP

#include <procpool/config.hpp>
#include <procpool/platform/types.hpp>
#include <procpool/platform/posix/errors.hpp>

#include <algorithm>
#include <cerrno>
#include <utility>
#include <vector>

#include <unistd.h>
#if defined(__linux__)
#include <sys/epoll.h>
#include <sys/timerfd.h>
#endif

PROCPOOL_BEGIN_NAMESPACE
namespace platform {

/// An event set: `fd` turns readable when a watched item is ready or the timeout passes (level-triggered).
struct event_set {
    native_handle fd = invalid_handle;
    native_handle timer = invalid_handle;
    std::vector<std::pair<native_handle, bool>> watched; // (descriptor, wants write), as registered now
};

#if defined(__linux__)
inline constexpr bool has_event_set = true;

/// Opens an empty event set (both descriptors close-on-exec). \throws std::system_error.
inline void open_event_set(event_set& s) {
    s.fd = ::epoll_create1(EPOLL_CLOEXEC);
    if (s.fd < 0) throw_errno("epoll_create1");
    s.timer = ::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = s.timer;
    if (s.timer < 0 || ::epoll_ctl(s.fd, EPOLL_CTL_ADD, s.timer, &ev) < 0) {
        const int err = errno;
        if (s.timer >= 0) ::close(s.timer);
        ::close(s.fd);
        s.fd = s.timer = invalid_handle;
        errno = err;
        throw_errno("timerfd");
    }
}

/// Makes the set watch exactly `items` (readable, hung up, and writable when asked), and time out after
/// `timeout_ms` (-1: never; 0: at once).
inline void watch_event_set(event_set& s, const std::vector<poll_item>& items, int timeout_ms) {
    std::vector<std::pair<native_handle, bool>> want;
    want.reserve(items.size());
    for (const auto& i : items) want.emplace_back(i.fd, i.want_write);
    std::sort(want.begin(), want.end());
    want.erase(std::unique(want.begin(), want.end(),
                           [](const auto& a, const auto& b) { return a.first == b.first; }),
               want.end());
    // Every wanted descriptor is added again (modified when it is there): a channel closed since the last call left
    // the set by itself, and a new one may have been given the same number.
    for (const auto& [fd, write] : want) {
        epoll_event ev{};
        ev.events = EPOLLIN | (write ? EPOLLOUT : 0u);
        ev.data.fd = fd;
        if (::epoll_ctl(s.fd, EPOLL_CTL_ADD, fd, &ev) == 0) continue;
        if (errno == EEXIST && ::epoll_ctl(s.fd, EPOLL_CTL_MOD, fd, &ev) == 0) continue;
        throw_errno("epoll_ctl");
    }
    for (const auto& [fd, write] : s.watched) // no longer wanted (an error: it was closed, and left by itself)
        if (!std::binary_search(want.begin(), want.end(), std::pair<native_handle, bool>(fd, false),
                                [](const auto& a, const auto& b) { return a.first < b.first; }))
            ::epoll_ctl(s.fd, EPOLL_CTL_DEL, fd, nullptr);
    s.watched = std::move(want);
    itimerspec t{};
    if (timeout_ms >= 0) { // it_value 0 would disarm: a timeout of 0 is one nanosecond
        t.it_value.tv_sec = timeout_ms / 1000;
        t.it_value.tv_nsec = static_cast<long>(timeout_ms % 1000) * 1000000L + (timeout_ms == 0 ? 1 : 0);
    }
    if (::timerfd_settime(s.timer, 0, &t, nullptr) < 0) throw_errno("timerfd_settime"); // also clears an expiry
}
#else
inline constexpr bool has_event_set = false;
inline void open_event_set(event_set&) {
    errno = ENOSYS;
    throw_errno("an event set (pool::native_handle) is not available on this system yet");
}
inline void watch_event_set(event_set&, const std::vector<poll_item>&, int) {}
#endif

/// Closes the set's descriptors (the watched channels stay open).
inline void close_event_set(event_set& s) noexcept {
    for (auto* h : {&s.fd, &s.timer})
        if (*h >= 0) {
            ::close(*h);
            *h = invalid_handle;
        }
    s.watched.clear();
}

} // namespace platform
PROCPOOL_END_NAMESPACE

#endif // PROCPOOL_PLATFORM_POSIX_EVENT_SET_HPP
