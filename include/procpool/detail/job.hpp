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

/// What few jobs have: kept apart, so that a queued job is small (a million queued tasks are a million jobs).
struct job_extras {
    std::vector<std::string> failures; // why earlier attempts died (retries)
    std::vector<lent_run> lent;        // in order of `at`
    std::vector<shared_ref> shared;    // the shared buffers its arguments refer to: alive until it is answered
};

/// A job waiting for, or running in, a worker: its state and its ready-to-send frame.
struct job {
    std::shared_ptr<state_base> state;
    std::vector<std::byte> frame;
    std::int64_t timeout_ms = 0;                         // 0: none
    std::shared_ptr<const context_snapshot> contexts{}; // the parent's contexts when it was submitted
    std::unique_ptr<job_extras> rare{};                  // null while the job has none of them

    /// The extras, made on first use (to add to them).
    job_extras& extras() {
        if (!rare) rare = std::make_unique<job_extras>();
        return *rare;
    }
    [[nodiscard]] const std::vector<lent_run>& lent() const noexcept { return rare ? rare->lent : none<lent_run>(); }
    [[nodiscard]] const std::vector<shared_ref>& shared() const noexcept {
        return rare ? rare->shared : none<shared_ref>();
    }
    [[nodiscard]] bool has_lent() const noexcept { return rare && !rare->lent.empty(); }
    /// Keeps what encoding collected (most jobs have neither: then nothing is allocated).
    void keep(std::vector<lent_run>&& lent, std::vector<shared_ref>&& shared) {
        if (lent.empty() && shared.empty()) return;
        auto& x = extras();
        x.lent = std::move(lent);
        x.shared = std::move(shared);
    }
    /// Once the lent bytes are written (or copied): the caller's objects are not referred to any more.
    void forget_lent() noexcept {
        if (rare) rare->lent.clear();
    }

private:
    template <class T>
    static const std::vector<T>& none() noexcept {
        static const std::vector<T> empty;
        return empty;
    }
};

/// Bytes of all the lent runs.
inline std::size_t lent_bytes(const std::vector<lent_run>& runs) noexcept {
    std::size_t n = 0;
    for (const auto& r : runs) n += r.bytes.size();
    return n;
}

/// Makes `j.frame` whole: copies the lent runs into it (for a job that may be sent again, or later).
inline void take_lent(job& j) {
    if (!j.has_lent()) return;
    auto& lent = j.rare->lent;
    std::vector<std::byte> whole;
    whole.reserve(j.frame.size() + lent_bytes(lent));
    std::size_t at = 0;
    for (const auto& r : lent) {
        whole.insert(whole.end(), j.frame.begin() + static_cast<std::ptrdiff_t>(at),
                     j.frame.begin() + static_cast<std::ptrdiff_t>(r.at));
        whole.insert(whole.end(), r.bytes.begin(), r.bytes.end());
        at = r.at;
    }
    whole.insert(whole.end(), j.frame.begin() + static_cast<std::ptrdiff_t>(at), j.frame.end());
    j.frame = std::move(whole);
    lent.clear();
}

} // namespace detail

PROCPOOL_END_NAMESPACE

#endif // PROCPOOL_DETAIL_JOB_HPP
