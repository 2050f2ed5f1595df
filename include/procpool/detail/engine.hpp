// SPDX-License-Identifier: BSL-1.0
// procpool/detail/engine.hpp: what a pool drives. The pool checks a call, encodes it into a job and hands the job to
// one engine: inline_engine (in_process), process_engine (worker processes), or another backend behind the same
// interface (MPI ranks). A new backend is one class derived from pool_engine; nothing in pool.hpp changes.
#ifndef PROCPOOL_DETAIL_ENGINE_HPP
#define PROCPOOL_DETAIL_ENGINE_HPP

#include <procpool/config.hpp>
#include <procpool/detail/job.hpp>
#include <procpool/error.hpp>
#include <procpool/future.hpp>
#include <procpool/platform/types.hpp>

#include <cstddef>
#include <exception>
#include <memory>
#include <string>
#include <vector>

PROCPOOL_BEGIN_NAMESPACE

namespace detail {

/// Selects pool's constructor from an engine (for backends; not for applications).
struct engine_tag {
    explicit engine_tag() = default;
};

/// The interface between a pool and its engine. wait/wait_any/cancel/interrupt come from `engine`, which futures
/// use; the rest is what the pool itself calls.
class pool_engine : public engine {
public:
    /// Starts the workers and waits until they are ready. \throws start_error, initializer_error.
    virtual void start() = 0;
    /// Queues (or runs) a job. \throws pool_closed after shutdown, or the error that broke the pool.
    virtual void submit(job j) = 0;
    /// Stops accepting jobs; finishes (or, with `cancel_pending`, cancels) the queued ones; retires the workers.
    virtual void shutdown(bool cancel_pending) = 0;
    /// Number of workers the engine keeps (0: tasks run in the calling process).
    [[nodiscard]] virtual std::size_t size() const noexcept = 0;
    /// Process ids of the live workers.
    [[nodiscard]] virtual std::vector<long> pids() const = 0;
    /// Exceptions thrown by on_worker_lost since the last call, oldest first.
    [[nodiscard]] virtual std::vector<std::exception_ptr> take_callback_errors() { return {}; }
    /// Whether jobs run in another process: the parent's contexts are captured for them only then.
    [[nodiscard]] virtual bool remote() const noexcept { return true; }
    /// Whether shared buffers go with a job's frame as copies of their contents (workers on other machines).
    [[nodiscard]] virtual bool copies_shared() const noexcept { return false; }
    /// Whether submit may lend the job large arguments (lent_run) instead of copying them into its frame.
    [[nodiscard]] virtual bool lends() const noexcept { return false; }
    /// A buffer of at least `bytes` capacity whose pages are already touched, or an empty one.
    [[nodiscard]] virtual std::vector<std::byte> take_frame_buffer(std::size_t) { return {}; }
    /// A handle an event loop waits on for readability: readable when poll() has something to do. The engine owns
    /// it. \throws error when the engine (or the platform) has none.
    [[nodiscard]] virtual platform::native_handle native_handle() {
        throw error("procpool: this pool's engine has no handle for an event loop; call pool.poll() from a timer.");
    }
    /// Makes the progress possible now without blocking (reads results, dispatches, enforces deadlines).
    virtual void poll() {}
};

/// An engine's cancel of a job still in its queue: fails it with task_cancelled and takes it out. False when `s`
/// is not queued (sent to a worker already, or done).
template <class Queue>
bool cancel_queued(Queue& queue, state_base& s) {
    auto it = queue.begin();
    while (it != queue.end() && it->state.get() != &s) ++it;
    if (it == queue.end()) return false;
    it->state->fail(std::make_exception_ptr(task_cancelled("procpool: task \"" + s.task + "\" was cancelled")));
    queue.erase(it);
    return true;
}

/// shutdown(cancel_pending = true): every queued job fails with task_cancelled.
template <class Queue>
void cancel_all_queued(Queue& queue) {
    for (auto& j : queue)
        j.state->fail(std::make_exception_ptr(
            task_cancelled("procpool: task \"" + j.state->task + "\" was cancelled by shutdown")));
    queue.clear();
}

} // namespace detail

PROCPOOL_END_NAMESPACE

#endif // PROCPOOL_DETAIL_ENGINE_HPP
