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

/// What encoding a job's arguments collects besides its frame: the runs lent from the caller's arguments and the
/// shared buffers they refer to (most jobs: neither). Made and destroyed out of line in separate mode, so that a
/// file that submits does not compile these vectors' operations.
struct job_parts {
    std::vector<lent_run> lent;
    std::vector<shared_ref> shared;
    PROCPOOL_DECL job_parts() noexcept;
    PROCPOOL_DECL ~job_parts();
    job_parts(const job_parts&) = delete;
    job_parts& operator=(const job_parts&) = delete;
};

/// A job waiting for, or running in, a worker: its state and its ready-to-send frame. Its constructors, destructor and
/// the members that touch the extras are compiled once in separate mode (detail/job_impl.hpp): a file that submits
/// then does not compile the extras' vectors again.
struct job {
    std::shared_ptr<state_base> state;
    std::vector<std::byte> frame;
    std::int64_t timeout_ms = 0;                         // 0: none
    std::shared_ptr<const context_snapshot> contexts{}; // the parent's contexts when it was submitted
    std::unique_ptr<job_extras> rare{};                  // null while the job has none of them

    PROCPOOL_DECL job() noexcept;
    PROCPOOL_DECL job(std::shared_ptr<state_base> s, std::vector<std::byte> f, std::int64_t timeout,
                      std::shared_ptr<const context_snapshot> ctx) noexcept;
    PROCPOOL_DECL job(job&&) noexcept;
    PROCPOOL_DECL job& operator=(job&&) noexcept;
    PROCPOOL_DECL ~job();

    /// The extras, made on first use (to add to them).
    PROCPOOL_DECL job_extras& extras();
    [[nodiscard]] PROCPOOL_DECL const std::vector<lent_run>& lent() const noexcept;
    [[nodiscard]] PROCPOOL_DECL const std::vector<shared_ref>& shared() const noexcept;
    [[nodiscard]] PROCPOOL_DECL bool has_lent() const noexcept;
    /// Keeps what encoding collected (most jobs have neither: then nothing is allocated).
    PROCPOOL_DECL void keep(job_parts&& parts);
    /// Once the lent bytes are written (or copied): the caller's objects are not referred to any more.
    PROCPOOL_DECL void forget_lent() noexcept;
};

/// Bytes of all the lent runs.
PROCPOOL_DECL std::size_t lent_bytes(const std::vector<lent_run>& runs) noexcept;

/// Makes `j.frame` whole: copies the lent runs into it (for a job that may be sent again, or later).
PROCPOOL_DECL void take_lent(job& j);

} // namespace detail

PROCPOOL_END_NAMESPACE

#if PROCPOOL_HEADER_ONLY
#include <procpool/detail/job_impl.hpp>
#endif

#endif // PROCPOOL_DETAIL_JOB_HPP
