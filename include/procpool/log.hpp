// SPDX-License-Identifier: BSL-1.0
// procpool/log.hpp: lifecycle events (worker start, handshake, dispatch, recycle, exit) for debugging pools.
#ifndef PROCPOOL_LOG_HPP
#define PROCPOOL_LOG_HPP

#include <procpool/config.hpp>
#include <procpool/platform/this_process.hpp>

#include <cstdio>
#include <cstring>
#include <functional>
#include <mutex>
#include <string>
#include <utility>

PROCPOOL_BEGIN_NAMESPACE

/// How much procpool reports. `PROCPOOL_LOG=debug|info` in the environment sets it at start-up.
enum class log_level : std::uint8_t { off = 0, info = 1, debug = 2 };

/// One lifecycle event: its level, the process that reports it, and a message.
struct log_event {
    /// info or debug.
    log_level level;
    /// Process id of the process that reports the event.
    long pid;
    /// What happened, as one line.
    std::string message;
};

namespace detail {
struct log_state {
    std::mutex mutex;
    log_level level = [] {
        const char* v = platform::get_env("PROCPOOL_LOG");
        if (!v) return log_level::off;
        if (std::strcmp(v, "debug") == 0) return log_level::debug;
        if (std::strcmp(v, "info") == 0) return log_level::info;
        return log_level::off;
    }();
    std::function<void(const log_event&)> sink;
};
inline log_state& logger() {
    static log_state* s = new log_state; // never destroyed: a pool in a static logs during exit
    return *s;
}
} // namespace detail

/// Sets the level (overrides PROCPOOL_LOG). Workers started afterwards inherit it.
inline void set_log_level(log_level l) noexcept { detail::logger().level = l; }
/// The current level.
[[nodiscard]] inline log_level get_log_level() noexcept { return detail::logger().level; }

/// Routes events to `sink` instead of stderr (an empty function restores stderr). Parent-side events only:
/// workers write theirs to their stderr. The sink is called from inside the pool, with its lock held: it must
/// not call the pool (record the event and act on it later).
inline void set_log_sink(std::function<void(const log_event&)> sink) {
    std::lock_guard lock(detail::logger().mutex);
    detail::logger().sink = std::move(sink);
}

namespace detail {
template <class Make>
void log(log_level l, Make&& make) {
    auto& s = logger();
    if (l == log_level::off || static_cast<int>(s.level) < static_cast<int>(l)) return;
    log_event ev{l, platform::current_pid(), make()};
    std::lock_guard lock(s.mutex);
    if (s.sink) s.sink(ev);
    else std::fprintf(stderr, "procpool[%ld] %s: %s\n", ev.pid, l == log_level::debug ? "debug" : "info",
                      ev.message.c_str());
}
} // namespace detail

PROCPOOL_END_NAMESPACE

#endif // PROCPOOL_LOG_HPP
