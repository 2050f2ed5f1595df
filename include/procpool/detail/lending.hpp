// SPDX-License-Identifier: BSL-1.0
// procpool/detail/lending.hpp: large arguments written from the caller's own object, without a copy.
//
// A submit may lend its job the bytes of a large string or vector argument (job::lent, see pool.hpp's write_as):
// the frame refers to them instead of holding a copy. They are valid only until submit returns, so before it
// returns they are either written to the worker (zero-copy: the worker is idle and reads the frame at once, into
// the argument's storage) or copied into the job (take_lent, job.hpp). This file decides which, and writes.
#ifndef PROCPOOL_DETAIL_LENDING_HPP
#define PROCPOOL_DETAIL_LENDING_HPP

#include <procpool/config.hpp>
#include <procpool/detail/job.hpp>
#include <procpool/detail/worker_link.hpp>
#include <procpool/log.hpp>
#include <procpool/platform/platform.hpp>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

PROCPOOL_BEGIN_NAMESPACE

namespace detail {

/// Where the job whose state is `owner` is now: still queued, or sent to a worker (at `position` of its in-flight
/// list; 0 is the job it runs), or nowhere (answered or failed).
struct job_place {
    std::deque<job>::iterator queued{};
    worker_link* worker = nullptr;
    job* sent = nullptr;
    std::size_t position = 0;
};

inline job_place find_job(std::deque<job>& queue, const std::vector<std::unique_ptr<worker_link>>& slots,
                          const void* owner) {
    job_place at{queue.end()};
    for (auto it = queue.begin(); it != queue.end(); ++it)
        if (it->state.get() == owner) {
            at.queued = it;
            return at;
        }
    for (const auto& s : slots)
        for (std::size_t i = 0; i < s->inflight.size(); ++i)
            if (s->inflight[i].state.get() == owner) {
                at.worker = s.get();
                at.sent = &s->inflight[i];
                at.position = i;
                return at;
            }
    return at;
}

/// Writes the lent runs of `owner`'s job to its worker, or copies them into the job, before the caller's arguments
/// go away. Called by the driving thread (only it touches channels), lock held; the lock is released while waiting
/// for the socket, so the job is looked up again after every wait.
/// - Queued, or sent ahead behind a running job: copied at once (it may wait, or be requeued if its worker dies).
/// - The running job of its worker: written while the worker reads; if the worker stops reading for 100 ms, the
///   rest is copied into the link's own output (sent when it reads again); if the worker dies, dropped.
/// A job sent is never sent again (lending is on only without retries), so its frame need not be made whole.
/// \throws std::bad_alloc (no memory for a copy; the caller fails the job), or what platform::wait_any throws.
inline void write_lent(std::unique_lock<std::mutex>& lk, std::deque<job>& queue,
                       const std::vector<std::unique_ptr<worker_link>>& slots, const void* owner) {
    constexpr std::int64_t patience_ms = 100; // without a byte written: the worker stopped reading
    auto last_progress = platform::now_ms();
    std::size_t left = static_cast<std::size_t>(-1);
    for (;;) {
        const auto at = find_job(queue, slots, owner);
        if (at.queued != queue.end()) return take_lent(*at.queued);
        if (!at.sent) return; // answered or failed: nothing of it is left in any output (own_output, ended)
        worker_link& w = *at.worker;
        if (at.position != 0) { // sent ahead: may be requeued, so it needs its whole frame
            w.own_output(owner);
            return take_lent(*at.sent);
        }
        w.flush();
        const std::size_t now_left = w.unwritten(owner);
        if (now_left == 0 || w.state == worker_link::phase::closed) {
            at.sent->forget_lent();
            return;
        }
        const auto now = platform::now_ms();
        if (now_left < left) {
            left = now_left;
            last_progress = now;
        } else if (now - last_progress > patience_ms) {
            log(log_level::debug, [&] {
                return "worker pid " + std::to_string(w.pid) + " stopped reading a lent argument: copying the rest";
            });
            w.own_output(owner); // the rest goes out from a copy, when the worker reads again
            at.sent->forget_lent();
            return;
        }
        std::vector<platform::poll_item> items{{w.fd, true}};
        lk.unlock();
        try {
            platform::wait_any(items, 1);
        } catch (...) {
            lk.lock();
            throw;
        }
        lk.lock();
        if (items[0].hangup) { // dying: the driving thread reports it; the bytes are of no use now
            const auto again = find_job(queue, slots, owner); // `w` may be gone from the slots by now
            if (again.queued != queue.end()) return take_lent(*again.queued);
            if (again.worker) {
                again.worker->own_output(owner);
                again.sent->forget_lent();
            }
            return;
        }
    }
}

} // namespace detail

PROCPOOL_END_NAMESPACE

#endif // PROCPOOL_DETAIL_LENDING_HPP
