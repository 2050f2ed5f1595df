// SPDX-License-Identifier: BSL-1.0
// procpool/detail/process_engine.hpp: worker processes, dispatch, results, deaths and replacements.
//
// Threading model: no background thread. Whoever waits drives: one waiting thread at a time polls the
// worker channels (without the lock), then handles what arrived (under the lock) and wakes the others.
// submit() dispatches at once when no thread is driving, and otherwise wakes the driver through a pipe.
// Workers are started only from a known-safe state: spawn execs a fresh image; fork clones a template
// process taken when the pool was constructed (checked to be single-threaded then), never the live parent.
#ifndef PROCPOOL_DETAIL_PROCESS_ENGINE_HPP
#define PROCPOOL_DETAIL_PROCESS_ENGINE_HPP

#include <procpool/config.hpp>
#include <procpool/context.hpp>
#include <procpool/detail/engine.hpp>
#include <procpool/detail/handles.hpp>
#include <procpool/detail/job.hpp>
#include <procpool/detail/launcher.hpp>
#include <procpool/detail/lending.hpp>
#include <procpool/detail/result_ring.hpp>
#include <procpool/detail/spin.hpp>
#include <procpool/detail/wire.hpp>
#include <procpool/detail/worker_link.hpp>
#include <procpool/detail/worker_loop.hpp>
#include <procpool/detail/zygote.hpp>
#include <procpool/error.hpp>
#include <procpool/future.hpp>
#include <procpool/log.hpp>
#include <procpool/options.hpp>
#include <procpool/platform/platform.hpp>
#include <procpool/plugin.hpp>
#include <procpool/task.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

PROCPOOL_BEGIN_NAMESPACE

namespace detail {

using platform::describe_exit;

/// "type: what()" of an exception, for a log line.
inline std::string describe_exception(const std::exception_ptr& e) {
    try {
        std::rethrow_exception(e);
    } catch (const std::exception& x) {
        return std::string("std::exception: ") + x.what();
    } catch (...) {
        return "an exception not derived from std::exception";
    }
}

class process_engine final : public pool_engine, public std::enable_shared_from_this<process_engine> {
public:
    explicit process_engine(pool_options opts) : opts_(std::move(opts)), owner_(platform::current_pid()) {}

    ~process_engine() override { close_all(); }

    /// Starts the workers and waits for every one to be ready. \throws start_error.
    void start() override {
        registry::instance().verify();
        context_registry::instance().verify();
        target_ = opts_.workers;
        std::unique_lock lk(m_);
        try {
            platform::make_channel(wake_r_, wake_w_);
            own_handle(wake_r_);
            own_handle(wake_w_);
            launcher_.start();
            for (std::size_t i = 0; i < target_; ++i) launch(lk);
        } catch (const std::system_error& e) { // the system refused a process or a descriptor: a start_error
            lk.unlock();
            close_all();
            throw start_error("procpool: the pool could not start its processes: " + std::string(e.what()));
        } catch (...) {
            lk.unlock();
            close_all();
            throw;
        }
        auto deadline = std::chrono::steady_clock::now() + opts_.start_timeout;
        starting_ = true;
        while (ready_count() < target_ && !broken_) {
            if (std::chrono::steady_clock::now() >= deadline) {
                broken_ = std::make_exception_ptr(start_error(
                    "procpool: workers did not become ready within " + std::to_string(opts_.start_timeout.count()) +
                    " ms (a spawned worker runs static initialization and main() up to serve_if_worker; is main() "
                    "blocked before it?)"));
                break;
            }
            drive_once(lk, deadline);
        }
        starting_ = false;
        if (broken_) {
            auto e = broken_;
            lk.unlock();
            close_all();
            std::rethrow_exception(e);
        }
    }

    void submit(job j) override {
        std::unique_lock lk(m_);
        if (closed_) throw pool_closed("procpool: submit on a pool that was shut down");
        if (broken_) std::rethrow_exception(broken_);
        j.state->owner = weak_from_this();
        if (j.timeout_ms == 0) j.timeout_ms = default_timeout(opts_).count();
        // Lent bytes are written by this thread, as the driving thread (only that one touches the channels): when
        // another thread drives, or the job would wait, they are copied now (the caller's object is lent only
        // for the duration of this call).
        if (j.has_lent() && (driving_ || !idle_worker())) take_lent(j);
        const void* lent = j.has_lent() ? j.state.get() : nullptr;
        queue_.push_back(std::move(j));
        if (lent) {
            driving_ = true; // other waiters sleep on cv_ meanwhile; one takes over when this ends
            struct release {
                process_engine* e;
                ~release() {
                    e->driving_ = false;
                    e->cv_.notify_all();
                }
            } guard{this};
            dispatch();
            finish_lending(lk, lent);
        } else if (driving_) {
            wake();
        } else {
            dispatch();
            if (events_.fd != platform::invalid_handle) wake(); // an event loop's poll() updates its set for this job
        }
    }

    /// Whether a submit may lend it large arguments (lent_run): only when a job never has to be sent again. A job
    /// is lent-to only as the running (front) job of an idle worker, which no death requeues without retries.
    [[nodiscard]] bool lends() const noexcept override { return opts_.max_retries == 0; }

    bool wait(state_base& s, std::optional<std::chrono::steady_clock::time_point> deadline) override {
        std::unique_lock lk(m_);
        while (!s.done.load(std::memory_order_acquire)) {
            if (deadline && std::chrono::steady_clock::now() >= *deadline) return false;
            if (!driving_) drive_once(lk, deadline);
            else if (deadline) cv_.wait_until(lk, *deadline);
            else cv_.wait(lk);
        }
        return true;
    }

    std::size_t wait_any(std::span<state_base* const> states) override {
        std::unique_lock lk(m_);
        for (;;) {
            for (std::size_t i = 0; i < states.size(); ++i)
                if (states[i]->done.load(std::memory_order_acquire)) return i;
            if (!driving_) drive_once(lk, std::nullopt);
            else cv_.wait(lk);
        }
    }

    void interrupt() override {
        std::lock_guard lk(m_);
        cv_.notify_all();
        if (driving_ && wake_w_ >= 0) wake();
    }

    bool cancel(state_base& s) override {
        std::lock_guard lk(m_);
        if (!cancel_queued(queue_, s)) return false;
        cv_.notify_all();
        if (driving_) wake();
        return true;
    }

    /// Stops accepting tasks; finishes (or cancels) queued ones, retires every worker (running finalizers).
    void shutdown(bool cancel_pending) override {
        std::unique_lock lk(m_);
        if (shut_down_) return;
        closed_ = true;
        if (cancel_pending) {
            cancel_all_queued(queue_);
            cv_.notify_all();
        }
        // Wait for queued and running jobs, then retire. Also wait for workers the fork template was asked for
        // (a recycling replacement): one delivered after the loop below would never be retired or closed, and
        // shutdown would wait for it until its 30 s deadline.
        while (!queue_.empty() || in_flight() > 0 || launcher_.pending() > 0) {
            if (broken_) break;
            if (!driving_) drive_once(lk, std::nullopt);
            else cv_.wait(lk);
        }
        while (driving_) cv_.wait(lk);
        retiring_all_ = true;
        for (auto& w : slots_) {
            if (w->state == worker_link::phase::ready) retire(*w);
            else if (w->state == worker_link::phase::hello || w->state == worker_link::phase::setup)
                ended(*w); // not set up yet: closing the channel ends it quietly, no finalizer to run
        }
        auto deadline = std::chrono::steady_clock::now() + opts_.shutdown_timeout;
        while (live_count() > 0 && std::chrono::steady_clock::now() < deadline) drive_once(lk, deadline);
        if (live_count() > 0)
            log(log_level::info, [&] {
                return "shutdown_timeout (" + std::to_string(opts_.shutdown_timeout.count()) + " ms) reached: " +
                       std::to_string(live_count()) + " worker(s) still retiring (finalizer running, or stopped) are killed";
            });
        shut_down_ = true;
        std::vector<std::byte>().swap(spare_frame_);
        fail_everything(std::make_exception_ptr(pool_closed("procpool: the pool was shut down")));
        lk.unlock();
        close_all();
    }

    [[nodiscard]] std::vector<long> pids() const override {
        std::lock_guard lk(m_);
        std::vector<long> out;
        for (auto& w : slots_)
            if (w->state != worker_link::phase::closed) out.push_back(w->pid);
        return out;
    }

    /// A buffer of at least `bytes` capacity whose pages are already touched (a finished large frame), or an empty
    /// one: encoding 64 MiB into fresh pages costs several times the copy itself.
    [[nodiscard]] std::vector<std::byte> take_frame_buffer(std::size_t bytes) override {
        std::lock_guard lk(m_);
        if (spare_frame_.capacity() < bytes) return {};
        std::vector<std::byte> b;
        b.swap(spare_frame_);
        b.clear();
        return b;
    }

    /// Exceptions thrown by on_worker_lost since the last call (the newest max_callback_errors), oldest first.
    [[nodiscard]] std::vector<std::exception_ptr> take_callback_errors() override {
        std::lock_guard lk(m_);
        return std::exchange(callback_errors_, {});
    }
    static constexpr std::size_t max_callback_errors = 64;

    /// A descriptor an event loop waits on: readable when poll() has something to do (see watch_events).
    /// \throws error where the platform has no event set (Windows, non-Linux POSIX for now).
    [[nodiscard]] platform::native_handle native_handle() override {
        if constexpr (!platform::has_event_set)
            throw error("procpool: pool::native_handle() is not available on this platform yet. Call pool.poll() "
                        "from the event loop's timer, or wait on the futures from a thread of their own.");
        std::unique_lock lk(m_);
        if (events_.fd == platform::invalid_handle) {
            platform::open_event_set(events_);
            own_handle(events_.fd);
            own_handle(events_.timer);
            if (driving_) wake(); // the driver's round ends by filling the set
            else watch_events();
        }
        return events_.fd;
    }

    /// One round without blocking: what has arrived is handled, queued jobs are dispatched, deadlines are enforced.
    /// Nothing when another thread is driving the pool (that thread makes the progress).
    void poll() override {
        detail::callbacks_after run;
        std::unique_lock lk(m_);
        if (driving_ || shut_down_) return;
        drive_once(lk, std::nullopt, true);
    }

    [[nodiscard]] platform::pid_type owner() const noexcept { return owner_; }
    [[nodiscard]] std::size_t size() const noexcept override { return target_; }

private:
    // ---- starting workers -------------------------------------------------------------------------------
    /// Starts one worker (asynchronously: it becomes ready when its handshake completes; a forked one arrives as a
    /// launcher event first).
    void launch(std::unique_lock<std::mutex>&) {
        if (auto w = launcher_.launch()) add_slot(*w);
    }

    void add_slot(const started_worker& started) {
        const auto pid = started.pid;
        const auto fd = started.channel;
        const auto proc = started.proc;
        platform::set_nonblocking(fd, true);
        platform::enlarge_buffers(fd, 1 << 20);
        own_handle(fd);
        if (proc != platform::invalid_handle) own_handle(proc);
        auto w = std::make_unique<worker_link>();
        w->pid = pid;
        w->fd = fd;
        w->lifeline = started.lifeline;
        w->proc = proc;
        w->index = next_index_++;
        w->from_template = started.from_template;
        w->started_ms = platform::now_ms();
        // The ring's memory is made now, while the worker starts, and sent with the setup frame.
        if (PROCPOOL_RESULT_RING && platform::has_result_ring) {
            w->ring = result_ring::create(result_ring_bytes, w->ring_fd);
            if (w->ring) own_handle(w->ring_fd);
        }
        log(log_level::info, [&] { return "worker " + std::to_string(w->index) + " started, pid " + std::to_string(pid); });
        slots_.push_back(std::move(w));
    }

    // ---- the progress loop --------------------------------------------------------------------------------
    /// What a round waits on: poll_items_ (the channels, the wake pipe, the launcher's events, the workers' process
    /// handles), poll_slots_ and poll_procs_ (whose items they are), and for how long at most.
    struct round_items {
        int timeout = -1;
        std::size_t template_item = 0, proc_items = 0; // positions in poll_items_
    };
    round_items gather(std::optional<std::chrono::steady_clock::time_point> deadline) {
        round_items r;
        auto& items = poll_items_; // reused: this runs once per wait
        auto& who = poll_slots_;
        items.clear();
        who.clear();
        for (auto& w : slots_) {
            if (w->state == worker_link::phase::closed) continue;
            items.push_back({w->fd, w->has_output()});
            who.push_back(w.get());
        }
        items.push_back({wake_r_, false});
        r.template_item = items.size();
        if (launcher_.events_handle() != platform::invalid_handle) items.push_back({launcher_.events_handle(), false});
        // A worker's process handle: its death is seen even when a process its task forked holds the channel open.
        r.proc_items = items.size();
        auto& dying = poll_procs_;
        dying.clear();
        for (auto* w : who)
            if (w->proc != platform::invalid_handle) {
                items.push_back({w->proc, false});
                dying.push_back(w);
            }
        int& timeout = r.timeout;
        auto now_ms = platform::now_ms();
        if (pending_launches_ > 0) timeout = static_cast<int>(std::max<std::int64_t>(0, next_launch_ms_ - now_ms));
        if (launcher_.has_queued()) timeout = 0; // reports read while collecting an exit status
        if (deadline) {
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(*deadline - std::chrono::steady_clock::now());
            auto until = static_cast<int>(std::max<std::int64_t>(0, left.count() + 1));
            timeout = timeout < 0 ? until : std::min(timeout, until);
        }
        for (auto* w : who) { // handshakes and running tasks have deadlines of their own
            std::int64_t until = 0;
            if (w->state == worker_link::phase::hello || w->state == worker_link::phase::setup)
                until = w->started_ms + opts_.start_timeout.count();
            else if (w->deadline_ms)
                until = w->deadline_ms;
            if (!until) continue;
            auto left = static_cast<int>(std::max<std::int64_t>(0, until - now_ms));
            timeout = timeout < 0 ? left : std::min(timeout, left);
        }
        return r;
    }

    /// One round: poll the channels without the lock, then handle everything that arrived. `nonblocking`: poll
    /// without waiting (pool::poll).
    void drive_once(std::unique_lock<std::mutex>& lk, std::optional<std::chrono::steady_clock::time_point> deadline,
                    bool nonblocking = false) {
        driving_ = true;
        struct reset {
            process_engine* e;
            bool held = true;
            void release() {
                if (!held) return;
                held = false;
                e->driving_ = false;
                e->cv_.notify_all();
            }
            ~reset() { release(); }
        } guard{this};
        dispatch();
        const auto round = gather(deadline);
        auto& items = poll_items_;
        auto& who = poll_slots_;
        auto& dying = poll_procs_;
        const std::size_t template_item = round.template_item, proc_items = round.proc_items;
        const int timeout = nonblocking ? 0 : round.timeout;
        auto now_ms = platform::now_ms();
        bool answers_due = false; // a worker is running a job: its answer may be microseconds away
        for (auto* w : who) answers_due = answers_due || !w->inflight.empty();
        lk.unlock();
        try {
            auto ready = [&] {
                for (const auto& i : items)
                    if (i.readable || i.writable || i.hangup) return true;
                for (auto* w : who)
                    if (w->ring_has_data()) return true;
                return false;
            };
            // Before blocking, each ring is told to ring its doorbell (the channel) for its next record; then
            // looked at once more, so that a record published in between is not slept on.
            auto block = [&] {
                bool data = false;
                for (auto* w : who) data = w->ask_for_doorbell() || data;
                platform::wait_any(items, data ? 0 : timeout);
                for (auto* w : who) w->doorbell_not_needed();
                return true;
            };
            // While spinning only the channels are polled: a death that leaves a channel open (seen through a
            // process handle) is seen once the spin gives way to block(), which polls every item.
            auto spin_poll = [&] {
                platform::wait_any(std::span(items).first(proc_items), 0);
                return ready();
            };
            if (answers_due && timeout != 0) spin_.wait(spin_poll, block);
            else block();
        } catch (...) {
            lk.lock();
            throw;
        }
        lk.lock();
        if (items[who.size()].readable) {
            char buf[64];
            while (platform::read_some(wake_r_, buf, sizeof buf) > 0) {
            }
        }
        if (launcher_.has_queued() ||
            (template_item < proc_items && (items[template_item].readable || items[template_item].hangup)))
            handle_launch_events();
        for (std::size_t i = 0; i < who.size(); ++i) {
            auto* w = who[i];
            if (w->state == worker_link::phase::closed) continue;
            if (items[i].writable) w->flush();
            if (items[i].readable || items[i].hangup) receive(*w);
            else if (w->ring_has_data()) handle_frames(*w);
        }
        for (std::size_t i = 0; i < dying.size(); ++i) {
            auto* w = dying[i];
            if (w->state == worker_link::phase::closed || !items[proc_items + i].readable) continue;
            receive(*w); // what it wrote before it died counts: read the channel, then the ring, to their ends
            if (w->state != worker_link::phase::closed) ended(*w);
        }
        retry_launches();
        now_ms = platform::now_ms();
        for (auto* w : who) {
            if ((w->state == worker_link::phase::hello || w->state == worker_link::phase::setup) &&
                now_ms - w->started_ms > opts_.start_timeout.count()) {
                start_failed(*w, "did not complete its handshake within " + std::to_string(opts_.start_timeout.count()) +
                                     " ms");
            } else if (w->state != worker_link::phase::closed && w->deadline_ms && now_ms >= w->deadline_ms &&
                       !w->inflight.empty()) {
                const auto& running = w->inflight.front();
                // per_task: the task's own process is killed, the warm worker stays (it reports the death as
                // task_died); if it does not within 2 s, or under a worker's own task, the worker is killed.
                if (auto task_pid = w->task_process(); task_pid && w->timed_out != running.state->id) {
                    w->timed_out = running.state->id;
                    w->timeout_reason = std::make_exception_ptr(task_timeout(
                        "procpool: task \"" + running.state->task + "\" exceeded its timeout of " +
                        std::to_string(running.timeout_ms) + " ms; its process pid " + std::to_string(task_pid) +
                        " was killed"));
                    w->deadline_ms = now_ms + 2000;
                    platform::kill_process(task_pid);
                    continue;
                }
                kill(*w, std::make_exception_ptr(task_timeout(
                             "procpool: task \"" + running.state->task + "\" exceeded its timeout of " +
                             std::to_string(running.timeout_ms) + " ms; worker pid " + std::to_string(w->pid) +
                             " was killed and replaced")));
            }
        }
        reap_closed();
        dispatch();
        watch_events();
        // Report without the driver role: a callback that waits on a future or shuts the pool down drives it.
        guard.release();
        report_losses(lk);
        if (!pending_callbacks().empty()) { // done-callbacks of states this round completed: never under the lock
            lk.unlock();
            run_pending_callbacks();
            lk.lock();
        }
    }

    /// With an event loop's handle open (native_handle), makes it watch what the next round would wait on, and
    /// become readable at the round's deadline. The rings are asked to ring their doorbells (the channel) for their
    /// next record, as before a blocking wait; one that already holds a record makes the handle readable at once.
    void watch_events() {
        if (events_.fd == platform::invalid_handle) return;
        auto round = gather(std::nullopt);
        bool data = false;
        for (auto* w : poll_slots_) data = w->ask_for_doorbell() || data;
        platform::watch_event_set(events_, poll_items_, data ? 0 : round.timeout);
    }

    /// Runs on_worker_lost for the deaths seen so far, without the lock (the callback may use the pool). One
    /// thread at a time: a thread that finds another one reporting leaves its events to it, so calls never overlap.
    void report_losses(std::unique_lock<std::mutex>& lk) {
        if (reporting_) return;
        while (!lost_.empty()) {
            auto events = std::move(lost_);
            lost_.clear();
            if (!opts_.on_worker_lost) continue;
            reporting_ = true;
            lk.unlock();
            // A throwing callback is contained: its exception belongs to no future and to no caller that happens to
            // drive the pool. It is logged and kept for take_callback_errors(); the other events are still reported.
            std::vector<std::exception_ptr> thrown;
            for (const auto& e : events) {
                try {
                    opts_.on_worker_lost(e);
                } catch (...) {
                    thrown.push_back(std::current_exception());
                    log(log_level::info, [&] {
                        return "on_worker_lost threw (kept for pool::take_callback_errors()): " +
                               describe_exception(thrown.back());
                    });
                }
            }
            lk.lock();
            reporting_ = false;
            for (auto& t : thrown) {
                if (callback_errors_.size() >= max_callback_errors) callback_errors_.erase(callback_errors_.begin());
                callback_errors_.push_back(std::move(t));
            }
        }
    }

    /// Before submit returns, the job's lent runs (the caller's argument bytes) are written to its worker, or
    /// copied (lending.hpp). Lock held, and the driving role (no other thread touches a channel).
    void finish_lending(std::unique_lock<std::mutex>& lk, const void* owner) {
        try {
            write_lent(lk, queue_, slots_, owner);
        } catch (...) { // no memory for a copy: the job fails (and a worker holding part of its frame goes)
            if (!lk.owns_lock()) lk.lock();
            const auto at = find_job(queue_, slots_, owner);
            if (at.worker) {
                kill(*at.worker, std::current_exception());
            } else if (at.queued != queue_.end()) {
                at.queued->state->fail(std::current_exception());
                queue_.erase(at.queued);
                cv_.notify_all();
            }
        }
    }

    /// A worker that takes jobs and runs none, with nothing queued: a job submitted now runs at once, there.
    [[nodiscard]] bool idle_worker() const noexcept {
        if (!queue_.empty()) return false;
        for (const auto& w : slots_)
            if (takes_job(*w) && w->inflight.empty()) return true;
        return false;
    }

    /// Starts the clock of the job now at the front of `w` (the one the worker runs next).
    static void arm(worker_link& w) {
        w.deadline_ms = (!w.inflight.empty() && w.inflight.front().timeout_ms > 0)
                            ? platform::now_ms() + w.inflight.front().timeout_ms
                            : 0;
    }

    void wake() {
        char b = 1;
        platform::write_some(wake_w_, &b, 1);
    }

    /// Handles what the launcher reports: forked workers that started, starts that failed, a template gone.
    void handle_launch_events() {
        launch_events_.clear();
        launcher_.read(launch_events_);
        for (auto& e : launch_events_) {
            switch (e.what) {
            case launch_event::kind::started: add_slot(e.worker); break;
            case launch_event::kind::start_failed: launch_failed(start_error(e.message), e.error); break;
            case launch_event::kind::template_gone:
                if (!shut_down_ && !retiring_all_) broken(std::make_exception_ptr(start_error(e.message)));
                break;
            }
        }
    }

    static constexpr std::size_t max_spare_frame = std::size_t{1} << 30;

    /// Keeps the largest finished job frame (up to 1 GiB) for take_frame_buffer. Lock held.
    void recycle_frame(std::vector<std::byte>&& f) {
        if (shut_down_ || f.capacity() > max_spare_frame || f.capacity() <= spare_frame_.capacity()) return;
        spare_frame_ = std::move(f);
    }

    // ---- frames from a worker ------------------------------------------------------------------------------
    void receive(worker_link& w) {
        // A bounded read per round: a worker that floods its channel cannot starve the others (poll reports
        // it again in the next round).
        std::size_t budget = std::size_t{16} << 20;
        for (;;) {
            std::size_t room = 0;
            const auto n = w.read(room);
            // At end of stream too, what it sent and published before it ended counts (a result is never blamed
            // for a crash that came after it).
            handle_frames(w);
            if (w.state == worker_link::phase::closed) return;
            if (n < 0) {
                ended(w);
                return;
            }
            if (n == 0) return;
            if (static_cast<std::size_t>(n) < room) return; // drained: no second recv to learn it
            if (static_cast<std::size_t>(n) >= budget) return;
            budget -= static_cast<std::size_t>(n);
        }
    }

    /// Handles what the link has received, in order; a corrupt frame or record kills the worker.
    void handle_frames(worker_link& w) {
        try {
            while (w.state != worker_link::phase::closed) {
                auto f = w.next_frame();
                if (!f) return;
                handle(w, f->type, f->payload);
            }
        } catch (const protocol_error& e) {
            kill(w, std::make_exception_ptr(protocol_error(
                        "procpool: worker pid " + std::to_string(w.pid) + " sent a corrupt frame: " + e.what(), e.offset())));
        }
    }

    void handle(worker_link& w, frame_type type, std::span<const std::byte> payload) {
        using P = worker_link::phase;
        switch (type) {
        case frame_type::hello: {
            if (w.state != P::hello) break;
            auto h = decode<hello_msg>(payload);
            std::string why;
            if (h.protocol != protocol_version) why = "protocol version " + std::to_string(h.protocol) + " (expected " + std::to_string(protocol_version) + ")";
            else if (h.codec != codec_version) why = "codec version " + std::to_string(h.codec);
            else if (h.executable != platform::executable_identity()) why = "a different executable image (" + h.executable + ")";
            else if (h.registry_hash != registry::instance().hash()) why = "a different task registry (hash " + std::to_string(h.registry_hash) + ", expected " + std::to_string(registry::instance().hash()) + "): it is another build of the program";
            if (!why.empty()) {
                refuse(w, "procpool: worker pid " + std::to_string(w.pid) + " was refused at its handshake: it runs " + why + ".");
                return;
            }
            log(log_level::debug, [&] { return "worker pid " + std::to_string(w.pid) + " handshake ok"; });
            setup_msg s;
            s.worker_index = w.index;
            s.initializer = opts_.initializer;
            s.finalizer = opts_.finalizer;
            s.log_level = static_cast<std::uint8_t>(get_log_level());
            s.leak_audit = static_cast<std::uint8_t>(opts_.leak_audit);
            s.plugins = loaded_plugins();
            put_limits(s, opts_);
            w.plugins_sent = s.plugins.size();
            w.state = P::setup;
            if (!w.ring || w.has_output()) {
                w.ring.reset();
                w.close_ring_fd();
                w.send(make_frame(frame_type::setup, s));
                return;
            }
            s.result_ring = static_cast<std::uint32_t>(result_ring_bytes);
            const auto frame = make_frame(frame_type::setup, s);
#if !PROCPOOL_WINDOWS
            const bool sent = platform::send_handle(w.fd, w.ring_fd, frame.data(), frame.size());
#else
            const bool sent = false;
#endif
            w.close_ring_fd(); // the worker has its own descriptor now (or none: then it is refused below)
            if (!sent) start_failed(w, "could not be sent its setup frame and result ring");
            return;
        }
        case frame_type::guard_missing: {
            refuse(w, decode<std::string>(payload));
            return;
        }
        case frame_type::ready:
            if (w.state != P::setup) break;
            w.state = P::ready;
            w.ring_on = w.ring != nullptr; // what it sends from here on is in the ring, or marked there
            consecutive_start_failures_ = 0;
            backoff_ms_ = failing_since_ms_ = 0;
            log(log_level::debug, [&] { return "worker pid " + std::to_string(w.pid) + " ready"; });
            dispatch();
            return;
        case frame_type::init_failed: {
            if (w.state != P::setup) break;
            auto rec = decode<exception_record>(payload);
            if (rec.type == "procpool::start_error") return broken(std::make_exception_ptr(start_error(rec.what)));
            auto cause = exception_from_record(rec);
            broken(std::make_exception_ptr(initializer_error(
                "procpool: the initializer \"" + (opts_.initializer ? opts_.initializer->name : std::string()) +
                    "\" threw in worker pid " + std::to_string(w.pid) + ": " + rec.type + ": " + rec.what,
                cause)));
            return;
        }
        case frame_type::result:
        case frame_type::batch_result: {
            if (w.state != P::ready && w.state != P::retiring) break;
            if (w.inflight.empty()) break;
            reader r(payload);
            auto id = r.read<std::uint64_t>();
            auto& front = w.inflight.front();
            if (id != front.state->id)
                throw protocol_error("procpool: result for job " + std::to_string(id) + ", expected " +
                                         std::to_string(front.state->id),
                                     0);
            front.state->deliver_payload(payload.subspan(r.offset()));
            w.own_output(front.state.get()); // answered before it was all sent: a broken worker, but no dangling
            if (front.frame.size() >= worker_link::borrow_bytes) recycle_frame(std::move(front.frame));
            {
                auto now = std::chrono::steady_clock::now();
                double us = std::chrono::duration<double, std::micro>(now - w.busy_since).count();
                w.task_us = w.task_us <= 0 ? us : w.task_us + (us - w.task_us) / 8;
                w.busy_since = now; // the next job started when this one ended
            }
            w.inflight.pop_front();
            answered(w);
            return;
        }
        case frame_type::task_died: { // isolation_mode::per_task: the job's own process ended, its worker lives on
            if (w.state != P::ready && w.state != P::retiring) break;
            if (w.inflight.empty()) break;
            auto d = decode<task_died_msg>(payload);
            if (d.id != w.inflight.front().state->id)
                throw protocol_error("procpool: task_died for job " + std::to_string(d.id) + ", expected " +
                                         std::to_string(w.inflight.front().state->id),
                                     0);
            job running = std::move(w.inflight.front());
            w.inflight.pop_front();
            const platform::exit_status st{d.code, d.signal};
            if (w.timed_out == d.id) { // killed by the pool for its timeout
                running.state->fail(std::exchange(w.timeout_reason, nullptr));
                answered(w);
                return;
            }
            lost_.push_back(worker_lost{static_cast<long>(d.pid), st.code, st.signal, running.state->task,
                                        task_death_cause(d, w.pid) + " while running task \"" + running.state->task + "\""});
            died_under(std::move(running), task_death_cause(d, w.pid), st, d.pid);
            answered(w);
            return;
        }
        case frame_type::leak: {
            if (w.state != P::ready && w.state != P::retiring) break;
            auto leak = decode<leak_msg>(payload);
            std::string list;
            for (const auto& c : leak.contexts) list += (list.empty() ? "\"" : ", \"") + c + "\"";
            log(log_level::info, [&] {
                return "leak audit: task \"" + leak.task + "\" changed context " + list + " in worker pid " +
                       std::to_string(w.pid) + " and did not restore it";
            });
            w.applied.reset(); // its values are no longer what it was sent: the next task gets them all again
            if (opts_.leak_audit == leak_policy::retire || opts_.leak_audit == leak_policy::fail)
                w.retire_when_idle = true;
            return;
        }
        case frame_type::bye: {
            if (w.state != P::retiring) break;
            auto err = decode<std::optional<exception_record>>(payload);
            if (err)
                log(log_level::info, [&] { return "finalizer threw in worker pid " + std::to_string(w.pid) + ": " + err->type + ": " + err->what; });
            return;
        }
        default: break;
        }
        throw protocol_error(std::string("procpool: unexpected ") + frame_type_name(type) + " frame", 0);
    }

    /// `w` answered its front job (popped by the caller): the next one's clock starts; memory and recycling checks.
    void answered(worker_link& w) {
        using P = worker_link::phase;
        ++w.answered;
        arm(w);
        cv_.notify_all();
        if (opts_.max_memory_per_worker && w.state == P::ready && !w.retire_when_idle) {
            auto rss = platform::resident_bytes(w.pid);
            if (rss > opts_.max_memory_per_worker) {
                w.retire_when_idle = true; // takes no new job; retires once the jobs sent ahead are done
                log(log_level::info, [&] { return "worker pid " + std::to_string(w.pid) + " uses " + std::to_string(rss) + " bytes, over max_memory_per_worker: retiring it"; });
            }
        }
        bool recycle = opts_.max_tasks_per_worker && w.assigned >= opts_.max_tasks_per_worker;
        if ((recycle || w.retire_when_idle) && w.inflight.empty() && w.state == P::ready) {
            log(log_level::info, [&] { return "worker pid " + std::to_string(w.pid) + " recycled after " + std::to_string(w.assigned) + " tasks"; });
            retire(w);
            w.replace_when_reaped = true; // see ended(): under a process limit, N workers must be enough
        }
    }

    // ---- dispatch ---------------------------------------------------------------------------------------------
    /// How many jobs `w` may hold: about 1 ms of work, from its recent job times (2 until it has one).
    [[nodiscard]] std::size_t depth(const worker_link& w) const noexcept {
        // With the leak audit on, one job at a time: a job sent ahead would run before the audit's verdict on the
        // one before it arrives (contexts re-sent, worker retired), in the polluted worker.
        if (opts_.leak_audit != leak_policy::off) return 1;
        if (opts_.prefetch) return opts_.prefetch;
        if (w.task_us <= 0) return 2;
        return static_cast<std::size_t>(std::clamp(std::ceil(1000.0 / w.task_us), 2.0, 128.0));
    }

    /// Whether `w` takes another job now.
    [[nodiscard]] bool takes_job(const worker_link& w) const noexcept {
        return w.state == worker_link::phase::ready && !w.retire_when_idle &&
               !(opts_.max_tasks_per_worker && w.assigned >= opts_.max_tasks_per_worker) && w.inflight.size() < depth(w);
    }

    void dispatch() {
        release_dropped_buffers();
        if (queue_.empty()) return;
        // Without a ring to count started jobs, an idle worker is checked before it is sent one: a worker that died
        // while nothing drove the pool would otherwise be blamed for a job that never reached it. (Indices: ended()
        // may add a replacement to slots_.)
        for (std::size_t i = 0; i < slots_.size(); ++i) {
            auto& w = *slots_[i];
            if (!w.ring_on && w.state == worker_link::phase::ready && w.inflight.empty() && platform::peer_closed(w.fd))
                ended(w);
        }
        // Rounds by in-flight count, from the lowest: the least loaded workers get jobs first. Each round sends
        // at least one job or jumps to the next count present, so the cost follows what is sent (dispatch runs
        // on every submit, usually only to find every worker full).
        constexpr auto none = static_cast<std::size_t>(-1);
        std::size_t level = none;
        for (auto& w : slots_)
            if (takes_job(*w)) level = std::min(level, w->inflight.size());
        while (level != none && !queue_.empty()) {
            std::size_t next = none;
            bool sent = false;
            for (auto& w : slots_) {
                if (queue_.empty()) break;
                if (!takes_job(*w)) continue;
                if (w->inflight.size() > level) {
                    next = std::min(next, w->inflight.size());
                    continue;
                }
                send_job(*w);
                sent = true;
            }
            level = sent ? level + 1 : next;
        }
        for (auto& w : slots_) { // one write per worker for everything this round gave it
            if (!w->unflushed) continue;
            w->unflushed = false;
            w->flush();
        }
    }

    /// The shared buffers this process dropped since: every ready worker that maps one is told now (it unmaps it
    /// once its tasks hold none), not with its next job, which may never come. Runs with every submit and every
    /// round of progress (a wait, a get, pool.poll()).
    void release_dropped_buffers() {
        const auto drops = shared_table::instance().drops();
        if (drops == drops_seen_) return;
        drops_seen_ = drops;
        for (auto& w : slots_)
            if (w->state == worker_link::phase::ready && w->release_dropped()) w->flush();
    }

    /// Moves the next queued job to `w`'s output (written by the caller's flush).
    void send_job(worker_link& w) {
        job j = std::move(queue_.front());
        queue_.pop_front();
        ++w.assigned;
        if (plugins().count.load(std::memory_order_acquire) > w.plugins_sent) {
            auto all = loaded_plugins();
            w.append(make_frame(frame_type::plugins,
                                 std::vector<std::string>(all.begin() + static_cast<std::ptrdiff_t>(w.plugins_sent), all.end())));
            w.plugins_sent = all.size();
        }
        if (j.contexts && j.contexts != w.applied) {
            auto delta = context_delta(w.applied.get(), *j.contexts);
            if (!delta.empty()) w.append(make_frame(frame_type::context, delta));
            w.applied = j.contexts;
        }
        w.unflushed = true;
        try {
            w.append_job(j);
        } catch (const std::system_error&) { // a shared buffer could not be handed to it: this task fails alone
            --w.assigned;
            j.state->fail(std::current_exception()); // says what failed and for which worker
            cv_.notify_all();
            return;
        }
        log(log_level::debug, [&] { return "dispatch \"" + j.state->task + "\" to worker pid " + std::to_string(w.pid); });
        if (w.inflight.empty()) w.busy_since = std::chrono::steady_clock::now();
        w.inflight.push_back(std::move(j));
        if (w.inflight.size() == 1) arm(w);
    }

    void retire(worker_link& w) {
        w.state = worker_link::phase::retiring;
        w.send(make_empty_frame(frame_type::retire));
    }

    /// Starts a worker in place of one that is gone. A start the system refuses for now (too many processes or
    /// descriptors, no memory) is tried again with backoff; see launch_failed.
    void launch_replacement() {
        std::unique_lock<std::mutex> dummy; // launch() does not use the lock; it only documents it is held
        try {
            launch(dummy);
        } catch (const std::system_error& e) {
            launch_failed(start_error(std::string("procpool: could not start a worker: ") + e.what()), e.code().value());
        } catch (...) {
            broken(std::current_exception());
        }
    }

    [[nodiscard]] static bool transient(int err) noexcept {
        return err == EAGAIN || err == ENOMEM || err == EMFILE || err == ENFILE;
    }

    /// A worker could not be started. When the cause may pass (a process or descriptor limit, memory), the start is
    /// tried again after 10 ms, doubling up to 1 s, while the live workers go on; "keep failing" means no worker at
    /// all for start_timeout: then the pool breaks with `e` (every queued task fails with it). While the pool is
    /// being constructed, and for other causes, it breaks at once.
    void launch_failed(const start_error& e, int err) {
        if (starting_ || !transient(err)) return broken(std::make_exception_ptr(e));
        const auto now = platform::now_ms();
        if (!failing_since_ms_) failing_since_ms_ = now;
        ++pending_launches_;
        backoff_ms_ = backoff_ms_ ? std::min<std::int64_t>(backoff_ms_ * 2, 1000) : 10;
        next_launch_ms_ = now + backoff_ms_;
        last_launch_error_ = e.what();
        log(log_level::info, [&] { return std::string(e.what()) + "; trying again in " + std::to_string(backoff_ms_) + " ms"; });
    }

    /// Retries the starts launch_failed put off, once their time has come (called by the driving thread).
    void retry_launches() {
        if (pending_launches_ == 0 || platform::now_ms() < next_launch_ms_) return;
        if (broken_ || (closed_ && queue_.empty() && in_flight() == 0)) {
            pending_launches_ = 0;
            return;
        }
        if (live_count() == 0 && launcher_.pending() == 0 &&
            platform::now_ms() - failing_since_ms_ >= opts_.start_timeout.count())
            return broken(std::make_exception_ptr(start_error(
                last_launch_error_ + "; no worker could be started for " + std::to_string(opts_.start_timeout.count()) +
                " ms (start_timeout)")));
        std::size_t n = pending_launches_;
        pending_launches_ = 0;
        while (n-- > 0 && !broken_) launch_replacement(); // a failure counts itself again, with a longer backoff
    }

    // ---- endings ----------------------------------------------------------------------------------------------
    void kill(worker_link& w, std::exception_ptr reason) {
        w.kill_reason = std::move(reason);
        platform::kill_process(w.pid);
        ended(w);
    }

    /// A worker failed before it was ready (refused handshake, missing guard): tasks are not lost.
    void refuse(worker_link& w, const std::string& message) {
        platform::kill_process(w.pid);
        w.kill_reason = std::make_exception_ptr(start_error(message));
        ended(w);
    }

    void start_failed(worker_link& w, const std::string& why) {
        refuse(w, "procpool: worker pid " + std::to_string(w.pid) + " " + why + ".");
    }

    /// The channel closed: collect the exit status, fail the running job, requeue the rest, replace the worker.
    void ended(worker_link& w) {
        using P = worker_link::phase;
        auto was = w.state;
        w.state = P::closed;
        w.close_channel(); // its unwritten bytes go too, some borrowed from the jobs requeued below
        platform::exit_status st = launcher_.collect(w.pid, w.from_template);
        w.close_process_handles(); // reaped: only now may its lifeline go (closing it kills a live worker)
        log(log_level::info, [&] { return "worker pid " + std::to_string(w.pid) + " " + describe_exit(st); });
        auto lost = [&](std::string task, std::string reason) {
            lost_.push_back(worker_lost{w.pid, st.code, st.signal, std::move(task), std::move(reason)});
        };
        if (was == P::hello || was == P::setup) {
            if (broken_ || retiring_all_) return; // init_failed already reported it, or shutdown closed it
            // Past the handshake, a worker that dies was loading plugins or running the initializer (a crash, so
            // there is no exception for initializer_error): name that, not serve_if_worker.
            const std::string in_setup =
                was != P::setup ? std::string()
                : opts_.initializer ? " while running its initializer \"" + opts_.initializer->name + "\""
                                    : std::string(" while setting up (loading plugins)");
            lost("", "worker pid " + std::to_string(w.pid) + " " + describe_exit(st) + in_setup + " before it was ready");
            std::exception_ptr e = w.kill_reason;
            if (!e && was == P::setup)
                e = std::make_exception_ptr(start_error("procpool: worker pid " + std::to_string(w.pid) + " " +
                                                        describe_exit(st) + in_setup + ", before it was ready."));
            if (!e)
                e = std::make_exception_ptr(start_error(
                    "procpool: worker pid " + std::to_string(w.pid) + " " + describe_exit(st) +
                    " before its handshake. A spawned worker must reach procpool::serve_if_worker(argc, argv), the "
                    "first line of main()."));
            if (starting_ || ++consecutive_start_failures_ >= 3) broken(e);
            else if (!closed_) launch_replacement();
            return;
        }
        if (was == P::retiring && w.inflight.empty()) { // a retirement: normal unless the finalizer crashed
            if (st.signal || st.code != 0)
                lost("", "worker pid " + std::to_string(w.pid) + " " + describe_exit(st) + " while retiring (in its finalizer)");
            if (w.replace_when_reaped && !broken_ && !retiring_all_ && (!closed_ || !queue_.empty() || in_flight() > 0))
                launch_replacement();
            return;
        }
        // Jobs it never began (it died while idle, before they reached it) did not run: they go back to the queue
        // as they were, to run in the replacement. The ring's count of started jobs tells; without a ring,
        // dispatch checks an idle worker before it sends (send_job).
        if (const auto started = w.jobs_started();
            !w.inflight.empty() && !w.kill_reason && started && *started <= w.answered) {
            for (auto it = w.inflight.rbegin(); it != w.inflight.rend(); ++it) queue_.push_front(std::move(*it));
            w.inflight.clear();
            cv_.notify_all();
        }
        if (!w.inflight.empty()) {
            job running = std::move(w.inflight.front());
            w.inflight.pop_front();
            std::string cause = "worker pid " + std::to_string(w.pid) + " " + describe_exit(st);
            // The jobs sent ahead never started: they go back to the front of the queue, in order.
            for (auto it = w.inflight.rbegin(); it != w.inflight.rend(); ++it) queue_.push_front(std::move(*it));
            w.inflight.clear();
            if (w.kill_reason) {
                lost(running.state->task, cause + " while running task \"" + running.state->task + "\" (killed by the pool)");
                running.state->fail(w.kill_reason);
            } else {
                lost(running.state->task, cause + " while running task \"" + running.state->task + "\"");
                died_under(std::move(running), cause, st, w.pid);
            }
            cv_.notify_all();
        } else {
            lost("", "worker pid " + std::to_string(w.pid) + " " + describe_exit(st) + " while idle");
        }
        if (!closed_ && !broken_) launch_replacement();
        else if (closed_ && !broken_ && !retiring_all_ && (!queue_.empty() || in_flight() > 0)) launch_replacement();
    }

    /// The process running `running` ended (`cause`, as `st`): the job runs again under max_retries, else fails
    /// with worker_died (limit_exceeded when a resource limit explains the death).
    void died_under(job running, const std::string& cause, const platform::exit_status& st, long pid) {
        if (auto e = limit_death(opts_, st, running.state->task, pid)) {
            running.state->fail(e);
            return;
        }
        auto& failures = running.extras().failures;
        failures.push_back(cause);
        if (failures.size() <= opts_.max_retries) {
            log(log_level::info, [&] { return "retrying task \"" + running.state->task + "\" (" + cause + ")"; });
            queue_.push_front(std::move(running));
        } else {
            std::string msg = "procpool: " + cause + " while running task \"" + running.state->task + "\"";
            if (failures.size() > 1) {
                msg += "; it was run " + std::to_string(failures.size()) + " times and killed its worker every time:";
                for (std::size_t i = 0; i < failures.size(); ++i)
                    msg += (i ? "; " : " ") + std::string("attempt ") + std::to_string(i + 1) + ": " + failures[i];
            }
            running.state->fail(std::make_exception_ptr(
                worker_died(msg, running.state->task, pid, st.code, st.signal)));
        }
    }

    void reap_closed() {
        std::erase_if(slots_, [](const std::unique_ptr<worker_link>& w) { return w->state == worker_link::phase::closed; });
    }

    void broken(std::exception_ptr e) {
        if (!broken_) broken_ = e;
        fail_everything(broken_);
    }

    void fail_everything(std::exception_ptr e) {
        for (auto& j : queue_) j.state->fail(e);
        queue_.clear();
        for (auto& w : slots_) {
            w->own_output(); // the stream stays whole for the retire frame
            for (auto& j : w->inflight) j.state->fail(e);
            w->inflight.clear();
        }
        cv_.notify_all();
    }

    void close_all() noexcept {
        // A forked copy of this process (the application's fork(), a pool in a static destroyed at the child's exit)
        // must not touch the parent's processes: no kill, no reap, no write. Its copies of the descriptors go with it.
        if (platform::current_pid() != owner_) return;
        std::lock_guard lk(m_);
        for (auto& w : slots_) {
            if (w->state == worker_link::phase::closed) continue;
            w->close_channel(); // the worker sees end of stream and exits
            w->state = worker_link::phase::closed;
            if (!w->from_template) platform::reap_or_kill(w->pid, 2000);
            else platform::kill_process(w->pid);
            w->close_process_handles();
        }
        slots_.clear();
        launcher_.close();
        for (auto h : {events_.fd, events_.timer}) release_handle(h);
        platform::close_event_set(events_);
        for (auto* h : {&wake_r_, &wake_w_}) {
            if (*h >= 0) {
                release_handle(*h);
                platform::close_handle(*h);
                *h = -1;
            }
        }
        fail_everything(std::make_exception_ptr(pool_closed("procpool: the pool was shut down")));
    }

    [[nodiscard]] std::size_t ready_count() const {
        return static_cast<std::size_t>(std::count_if(slots_.begin(), slots_.end(), [](auto& w) { return w->state == worker_link::phase::ready; }));
    }
    [[nodiscard]] std::size_t live_count() const {
        return static_cast<std::size_t>(std::count_if(slots_.begin(), slots_.end(), [](auto& w) { return w->state != worker_link::phase::closed; }));
    }
    [[nodiscard]] std::size_t in_flight() const {
        std::size_t n = 0;
        for (auto& w : slots_) n += w->inflight.size();
        return n;
    }

    pool_options opts_;
    platform::pid_type owner_;
    mutable std::mutex m_;
    std::condition_variable cv_;
    adaptive_spin spin_; // the driving thread's, before it blocks for answers
    bool driving_ = false;
    bool reporting_ = false; // a thread is running on_worker_lost
    bool starting_ = false;
    bool closed_ = false;
    bool shut_down_ = false;
    bool retiring_all_ = false;
    std::exception_ptr broken_;
    std::size_t target_ = 0;
    std::int64_t next_index_ = 0;
    int consecutive_start_failures_ = 0;
    std::vector<std::unique_ptr<worker_link>> slots_;
    std::deque<job> queue_;
    std::uint64_t drops_seen_ = 0; // shared_table::drops() when release_dropped_buffers last looked
    platform::native_handle wake_r_ = -1, wake_w_ = -1;
    launcher launcher_{opts_}; // after opts_, which it reads
    std::vector<launch_event> launch_events_;
    std::size_t pending_launches_ = 0;  // starts put off by launch_failed
    std::int64_t next_launch_ms_ = 0;   // when to try them
    std::int64_t backoff_ms_ = 0;       // the current delay (0: no failure since a worker last became ready)
    std::int64_t failing_since_ms_ = 0; // first failure since then
    std::string last_launch_error_;
    std::vector<worker_lost> lost_; // deaths seen in this round, reported after it without the lock
    std::vector<std::exception_ptr> callback_errors_; // thrown by on_worker_lost (take_callback_errors)
    std::vector<platform::poll_item> poll_items_;
    std::vector<worker_link*> poll_slots_;
    std::vector<worker_link*> poll_procs_;
    platform::event_set events_; // an event loop's handle on the pool (native_handle), opened on first use
    std::vector<std::byte> spare_frame_; // a large finished job frame, for the next large submit (fresh pages are slow)
};

} // namespace detail

PROCPOOL_END_NAMESPACE

#endif // PROCPOOL_DETAIL_PROCESS_ENGINE_HPP
