// SPDX-License-Identifier: BSL-1.0
// procpool/platform/windows/event_set.hpp: no pollable event set on Windows yet. The channels are overlapped named
// pipes behind a table, with no one waitable object that stands for all of them; pool::native_handle says so, and
// pool::poll() (no handle needed) still makes progress from an application's timer or idle callback.
#ifndef PROCPOOL_PLATFORM_WINDOWS_EVENT_SET_HPP
#define PROCPOOL_PLATFORM_WINDOWS_EVENT_SET_HPP

#include <procpool/config.hpp>
#include <procpool/platform/types.hpp>

#include <stdexcept>
#include <utility>
#include <vector>

PROCPOOL_BEGIN_NAMESPACE
namespace platform {

struct event_set {
    native_handle fd = invalid_handle;
    native_handle timer = invalid_handle;
    std::vector<std::pair<native_handle, bool>> watched;
};
inline constexpr bool has_event_set = false;
inline void open_event_set(event_set&) {
    throw std::runtime_error("procpool: an event set (pool::native_handle) is not available on Windows yet");
}
inline void watch_event_set(event_set&, const std::vector<poll_item>&, int) {}
inline void close_event_set(event_set&) noexcept {}

} // namespace platform
PROCPOOL_END_NAMESPACE

#endif // PROCPOOL_PLATFORM_WINDOWS_EVENT_SET_HPP
