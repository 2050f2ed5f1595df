// SPDX-License-Identifier: BSL-1.0
// procpool/detail/job_impl.hpp: the non-template part of detail/job.hpp: inline in header-only mode, compiled once in
// src.hpp with PROCPOOL_SEPARATE_COMPILATION.
#ifndef PROCPOOL_DETAIL_JOB_IMPL_HPP
#define PROCPOOL_DETAIL_JOB_IMPL_HPP

#include <procpool/config.hpp>
#include <procpool/detail/job.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

PROCPOOL_BEGIN_NAMESPACE

namespace detail {

PROCPOOL_DECL job::job() noexcept = default;
PROCPOOL_DECL job::job(std::shared_ptr<state_base> s, std::vector<std::byte> f, std::int64_t timeout,
                       std::shared_ptr<const context_snapshot> ctx) noexcept
    : state(std::move(s)), frame(std::move(f)), timeout_ms(timeout), contexts(std::move(ctx)) {}
PROCPOOL_DECL job::job(job&&) noexcept = default;
PROCPOOL_DECL job& job::operator=(job&&) noexcept = default;
PROCPOOL_DECL job::~job() = default;

PROCPOOL_DECL job_extras& job::extras() {
    if (!rare) rare = std::make_unique<job_extras>();
    return *rare;
}

// What a job without extras answers: empty lists, constant-initialized (no guard on each call, as a function's static
// would have: this is read on every submit).
template <class T>
inline const std::vector<T> no_extras{};

PROCPOOL_DECL const std::vector<lent_run>& job::lent() const noexcept { return rare ? rare->lent : no_extras<lent_run>; }
PROCPOOL_DECL const std::vector<shared_ref>& job::shared() const noexcept {
    return rare ? rare->shared : no_extras<shared_ref>;
}
PROCPOOL_DECL bool job::has_lent() const noexcept { return rare && !rare->lent.empty(); }

PROCPOOL_DECL job_parts::job_parts() noexcept = default;
PROCPOOL_DECL job_parts::~job_parts() = default;

PROCPOOL_DECL void job::keep(job_parts&& parts) {
    if (parts.lent.empty() && parts.shared.empty()) return;
    auto& x = extras();
    x.lent = std::move(parts.lent);
    x.shared = std::move(parts.shared);
}

PROCPOOL_DECL void job::forget_lent() noexcept {
    if (rare) rare->lent.clear();
}

PROCPOOL_DECL std::size_t lent_bytes(const std::vector<lent_run>& runs) noexcept {
    std::size_t n = 0;
    for (const auto& r : runs) n += r.bytes.size();
    return n;
}

PROCPOOL_DECL void take_lent(job& j) {
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

#endif // PROCPOOL_DETAIL_JOB_IMPL_HPP
