// SPDX-License-Identifier: BSL-1.0
// procpool/detail/job.hpp: a job, what an engine runs: a task's (or a map chunk's) shared state and its frame, with
// the large arguments lent from the caller instead of copied into it.
#ifndef PROCPOOL_DETAIL_JOB_HPP
#define PROCPOOL_DETAIL_JOB_HPP

#include <procpool/config.hpp>
#include <procpool/context.hpp>
#include <procpool/detail/shared_handles.hpp>
#include <procpool/future.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

PROCPOOL_BEGIN_NAMESPACE

namespace detail {

/// Bytes of a job's frame that are not in `frame` but in the caller's argument (a large string or vector), sent
/// from there: they belong at offset `at` of the frame. Valid only until submit returns (see detail/lending.hpp).
struct lent_run {
    std::size_t at;
    std::span<const std::byte> bytes;
};

/// A job waiting for, or running in, a worker: its state and its ready-to-send frame.
struct job {
    std::shared_ptr<state_base> state;
    std::vector<std::byte> frame;
    std::int64_t timeout_ms = 0;       // 0: none
    std::vector<std::string> failures; // why earlier attempts died (retries)
    std::shared_ptr<const context_snapshot> contexts{}; // the parent's contexts when it was submitted
    std::vector<lent_run> lent{};                        // in order of `at`
    std::vector<shared_ref> shared{}; // the shared buffers its arguments refer to: alive until it is answered
};

/// Bytes of all the lent runs.
inline std::size_t lent_bytes(const std::vector<lent_run>& runs) noexcept {
    std::size_t n = 0;
    for (const auto& r : runs) n += r.bytes.size();
    return n;
}

/// Makes `j.frame` whole: copies the lent runs into it (for a job that may be sent again, or later).
inline void take_lent(job& j) {
    if (j.lent.empty()) return;
    std::vector<std::byte> whole;
    whole.reserve(j.frame.size() + lent_bytes(j.lent));
    std::size_t at = 0;
    for (const auto& r : j.lent) {
        whole.insert(whole.end(), j.frame.begin() + static_cast<std::ptrdiff_t>(at),
                     j.frame.begin() + static_cast<std::ptrdiff_t>(r.at));
        whole.insert(whole.end(), r.bytes.begin(), r.bytes.end());
        at = r.at;
    }
    whole.insert(whole.end(), j.frame.begin() + static_cast<std::ptrdiff_t>(at), j.frame.end());
    j.frame = std::move(whole);
    j.lent.clear();
}

} // namespace detail

PROCPOOL_END_NAMESPACE

#endif // PROCPOOL_DETAIL_JOB_HPP
