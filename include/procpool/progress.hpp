// SPDX-License-Identifier: BSL-1.0
// procpool/progress.hpp: progress of map and map_unordered: the callback type and a ready-made terminal bar.
#ifndef PROCPOOL_PROGRESS_HPP
#define PROCPOOL_PROGRESS_HPP

#include <procpool/config.hpp>
#include <procpool/platform/this_process.hpp>

#include <chrono>
#include <cstddef>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <utility>

PROCPOOL_BEGIN_NAMESPACE

/// Told how many items of a map or map_unordered are done, out of how many: `(done, total)`. Called on the
/// thread that waits on the map (never with a pool's lock held), once with done == 0 when the items are sent,
/// then after each chunk completes, the last time with done == total.
using progress_callback = std::function<void(std::size_t done, std::size_t total)>;

namespace detail {

inline std::string format_duration(double seconds) {
    auto s = static_cast<long long>(std::max(0.0, seconds) + 0.5);
    char b[32];
    if (s >= 3600) std::snprintf(b, sizeof b, "%lld:%02lld:%02lld", s / 3600, s / 60 % 60, s % 60);
    else std::snprintf(b, sizeof b, "%02lld:%02lld", s / 60, s % 60);
    return b;
}

inline std::string format_rate(double per_second) {
    char b[32];
    if (per_second >= 1e6) std::snprintf(b, sizeof b, "%.2fM", per_second / 1e6);
    else if (per_second >= 1e3) std::snprintf(b, sizeof b, "%.1fk", per_second / 1e3);
    else std::snprintf(b, sizeof b, "%.1f", per_second);
    return b;
}

/// One line of a progress bar: `label  42% |#####     | 420/1000 [00:03<00:04, 140.0 it/s]`.
inline std::string progress_line(const std::string& label, std::size_t done, std::size_t total, double elapsed,
                                 int width = 30) {
    const double frac = total ? static_cast<double>(done) / static_cast<double>(total) : 1.0;
    const int filled = static_cast<int>(frac * width);
    std::string bar(static_cast<std::size_t>(filled), '#');
    bar.append(static_cast<std::size_t>(width - filled), ' ');
    const double rate = elapsed > 0 ? static_cast<double>(done) / elapsed : 0.0;
    const std::string eta =
        rate > 0 ? format_duration(static_cast<double>(total - std::min(done, total)) / rate) : std::string("?");
    char pct[16];
    std::snprintf(pct, sizeof pct, "%3d%%", static_cast<int>(frac * 100));
    return (label.empty() ? std::string() : label + " ") + pct + " |" + bar + "| " + std::to_string(done) + "/" +
           std::to_string(total) + " [" + format_duration(elapsed) + "<" + eta + ", " + format_rate(rate) + " it/s]";
}

} // namespace detail

/// A ready-made progress_callback: a tqdm-like bar on standard error, with the rate (items per second) and the
/// estimated time left. It draws only when standard error is a terminal (otherwise it does nothing, so logs and
/// pipes stay clean), at most ten times a second, and ends its line when done == total.
/// \code
/// auto out = pool.map<f>(inputs, {.on_progress = procpool::progress_bar("hashing")});
/// \endcode
[[nodiscard]] inline progress_callback progress_bar(std::string label = {}) {
    if (!platform::stderr_is_terminal()) return [](std::size_t, std::size_t) {};
    struct bar {
        std::string label;
        std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
        std::chrono::steady_clock::time_point last{};
    };
    auto b = std::make_shared<bar>();
    b->label = std::move(label);
    return [b](std::size_t done, std::size_t total) {
        auto now = std::chrono::steady_clock::now();
        if (done == 0) b->start = now;
        const bool end = done >= total;
        if (!end && done != 0 && now - b->last < std::chrono::milliseconds(100)) return;
        b->last = now;
        const double elapsed = std::chrono::duration<double>(now - b->start).count();
        std::fprintf(stderr, "\r%s%s", detail::progress_line(b->label, done, total, elapsed).c_str(), end ? "\n" : "");
        std::fflush(stderr);
    };
}

PROCPOOL_END_NAMESPACE

#endif // PROCPOOL_PROGRESS_HPP
