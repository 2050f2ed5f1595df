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
#include <procpool/detail/result_ring.hpp>
#include <procpool/detail/spin.hpp>
#include <procpool/error.hpp>
#include <procpool/future.hpp>
#include <procpool/log.hpp>
#include <procpool/platform/platform.hpp>
#include <procpool/plugin.hpp>
#include <procpool/protocol.hpp>
#include <procpool/task.hpp>
#include <procpool/worker.hpp>

#include <algorithm>
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
#include <vector>

PROCPOOL_BEGIN_NAMESPACE

/// How workers are started. See README "Start methods".
enum class start_method {
    spawn,     ///< posix_spawn of the running executable: fresh static state; needs serve_if_worker in main.
    fork,      ///< copies of the parent as it was when the pool was constructed (via a template process).
    in_process, ///< no processes: tasks run in the caller, through the full encode/decode path (debugging).
    forkserver  ///< a spawned, single-threaded server forks the workers: spawn's state, fork's start-up speed.
};

/// Whether `m` can start workers on this platform (Windows has spawn and in_process only).
constexpr bool is_available(start_method m) noexcept {
    return PROCPOOL_POSIX || m == start_method::spawn || m == start_method::in_process;
}

/// What start_method::fork does when the parent already has several threads.
enum class threaded_fork {
    refuse, ///< throw start_error (default): a lock held by another thread stays locked in the workers.
    warn    ///< log a warning and fork anyway.
};

/// What on_worker_lost reports about a worker that died.
struct worker_lost {
    long pid = 0;
    int exit_code = -1;     ///< exit code, or -1 when a signal killed it
    int signal = 0;         ///< the signal that killed it, or 0
    std::string task;       ///< the task it was running, or "" (between tasks, in its initializer or finalizer)
    std::string reason;     ///< a sentence, as in the error the task got
};

/// Options of a pool. Aggregate: use designated initializers, `pool{{.workers = 4}}`.
struct pool_options {
    /// Number of worker processes; 0 means std::thread::hardware_concurrency().
    std::size_t workers = 0;
    /// How workers start. spawn is the default: the same semantics on every OS and safe with threads.
    start_method start = start_method::spawn;
    /// A worker retires (running the finalizer) after this many tasks or map chunks; 0: never.
    std::size_t max_tasks_per_worker = 0;
    /// Registered task run once in each worker before its first task: `procpool::call<init>(args...)`.
    std::optional<task_call> initializer{};
    /// Registered task run in each worker when it retires normally (shutdown or recycling).
    std::optional<task_call> finalizer{};
    /// start_method::fork in a multi-threaded parent: refuse (default) or warn.
    threaded_fork on_threads = threaded_fork::refuse;
    /// How long a worker may take from start to ready (handshake and initializer).
    std::chrono::milliseconds start_timeout{60000};
    /// Default limit on the run time of a task (or of a map chunk); 0: none. A task over it fails with
    /// task_timeout, and its worker is killed and replaced. `pool.submit_with` overrides it per task.
    std::chrono::milliseconds task_timeout{0};
    /// How many more times a task runs when its worker dies under it (crash, signal, exit). 0, the default:
    /// never, since a task may have side effects. After the last attempt worker_died lists every cause.
    std::size_t max_retries = 0;
    /// A worker whose resident memory exceeds this many bytes after a task retires (the task's result is
    /// kept) and a fresh one replaces it; 0: no limit. Read from /proc on Linux; elsewhere not enforced.
    std::size_t max_memory_per_worker = 0;
    /// Called when a worker dies unexpectedly (not when it retires), from the thread that drives the
    /// pool, without the pool's lock held: it may call the pool.
    std::function<void(const worker_lost&)> on_worker_lost{};
    /// Re-read every context after each task in the worker and report a task that changed one: off (default),
    /// log, retire the worker, or fail the task with state_leak. Not applied with start_method::in_process.
    leak_policy leak_audit = leak_policy::off;
    /// How many jobs a worker may hold at once (running + sent ahead); 0, the default, adapts it per worker to
    /// about 1 ms of work: 2 for long tasks (load balancing), up to 128 for tiny ones (no idle gaps, fewer
    /// system calls). Jobs sent ahead can no longer be cancelled. With leak_audit on, always 1.
    std::size_t prefetch = 0;
};

/// Per-task options for pool::submit_with.
struct task_options {
    /// Limit on this task's run time (overrides pool_options::task_timeout; 0: the pool's default).
    std::chrono::milliseconds timeout{0};
};

namespace detail {

/// Bytes of a job's frame that are not in `frame` but in the caller's argument (a large string or vector), sent
/// from there: they belong at offset `at` of the frame. Valid only until submit returns (see settle_lent).
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

/// Bytes waiting for a worker's socket. Small frames are copied together (one send for many); a large job frame
/// is borrowed from its job, which stays in `inflight` (its frame alive) at least until its result arrives, and
/// lent runs from the caller's arguments until submit returns.
struct out_segment {
    std::vector<std::byte> owned;
    std::span<const std::byte> borrowed; // empty: the bytes are `owned`
    std::size_t pos = 0;                 // bytes already written
    const void* owner = nullptr;         // the job (state) the borrowed bytes belong to
    [[nodiscard]] bool is_borrowed() const noexcept { return borrowed.data() != nullptr; }
    [[nodiscard]] std::span<const std::byte> bytes() const noexcept {
        return is_borrowed() ? borrowed : std::span<const std::byte>(owned);
    }
};

struct worker_slot {
    enum class phase { hello, setup, ready, retiring, closed };
    platform::pid_type pid = 0;
    platform::native_handle fd = platform::invalid_handle;
    std::int64_t index = 0;
    phase state = phase::hello;
    bool from_template = false;
    frame_reader in;
    std::deque<out_segment> out;
    std::vector<std::byte> spare;  // capacity of a written segment, for the next one
    bool unflushed = false;        // dispatch appended to `out` this round
    std::deque<job> inflight; // front: running; the rest: sent ahead, not started
    std::chrono::steady_clock::time_point busy_since{}; // when the front job started (as far as the parent knows)
    double task_us = 0;       // moving average of its job times; 0: none yet
    std::size_t assigned = 0;
    std::int64_t started_ms = 0;
    std::int64_t deadline_ms = 0; // when the running job times out; 0: no limit
    bool over_memory = false;     // above max_memory_per_worker or leaked state: retire when idle
    std::shared_ptr<const context_snapshot> applied; // the contexts this worker has been sent
    std::size_t plugins_sent = 0;                    // how many of the loaded plugins it has been told about
    std::exception_ptr kill_reason; // why the pool killed it, reported instead of worker_died
    std::unique_ptr<result_ring> ring; // where its frames arrive once it is ready (null: all on the channel)
    platform::native_handle ring_fd = platform::invalid_handle; // the ring's memory, until sent with setup
    bool ring_on = false;              // it is ready: frames on the channel follow their `ring` record
    std::uint64_t ring_tail = 0;       // how far the ring has been read
    [[nodiscard]] bool ring_has_data() const noexcept {
        return ring_on && ring->control().head.load(std::memory_order_acquire) != ring_tail;
    }
};

using platform::describe_exit;

class process_engine final : public engine, public std::enable_shared_from_this<process_engine> {
public:
    explicit process_engine(pool_options opts) : opts_(std::move(opts)), owner_(platform::current_pid()) {}

    ~process_engine() override { close_all(); }

    /// Starts the workers and waits for every one to be ready. \throws start_error.
    void start() {
        registry::instance().verify();
        context_registry::instance().verify();
        target_ = opts_.workers;
        platform::make_channel(wake_r_, wake_w_);
        own_handle(wake_r_);
        own_handle(wake_w_);
        if (forks()) start_template();
        std::unique_lock lk(m_);
        for (std::size_t i = 0; i < target_; ++i) launch(lk);
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

    void submit(job j) {
        std::unique_lock lk(m_);
        if (closed_) throw pool_closed("procpool: submit on a pool that was shut down");
        if (broken_) std::rethrow_exception(broken_);
        j.state->owner = weak_from_this();
        if (j.timeout_ms == 0) j.timeout_ms = opts_.task_timeout.count();
        // Lent bytes are written by this thread, as the driving thread (only that one touches the channels): when
        // another thread drives, or the job would wait, they are copied now (the caller's object is lent only
        // for the duration of this call).
        if (!j.lent.empty() && (driving_ || !idle_worker())) take_lent(j);
        const void* lent = j.lent.empty() ? nullptr : j.state.get();
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
            settle_lent(lk, lent);
        } else if (driving_) {
            wake();
        } else {
            dispatch();
        }
    }

    /// Whether a submit may lend it large arguments (lent_run): only when a job never has to be sent again. A job
    /// is lent-to only as the running (front) job of an idle worker, which no death requeues without retries.
    [[nodiscard]] bool lends() const noexcept { return opts_.max_retries == 0; }

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
        auto it = std::find_if(queue_.begin(), queue_.end(), [&](const job& j) { return j.state.get() == &s; });
        if (it == queue_.end()) return false;
        it->state->fail(std::make_exception_ptr(task_cancelled("procpool: task \"" + s.task + "\" was cancelled")));
        queue_.erase(it);
        cv_.notify_all();
        if (driving_) wake();
        return true;
    }

    /// Stops accepting tasks; finishes (or cancels) queued ones, retires every worker (running finalizers).
    void shutdown(bool cancel_pending) {
        std::unique_lock lk(m_);
        if (shut_down_) return;
        closed_ = true;
        if (cancel_pending) {
            for (auto& j : queue_)
                j.state->fail(std::make_exception_ptr(
                    task_cancelled("procpool: task \"" + j.state->task + "\" was cancelled by shutdown")));
            queue_.clear();
            cv_.notify_all();
        }
        // Wait for queued and running jobs, then retire. Also wait for workers the fork template was asked for
        // (a recycling replacement): one delivered after the loop below would never be retired or closed, and
        // shutdown would wait for it until its 30 s deadline.
        while (!queue_.empty() || in_flight() > 0 || (template_pending_ > 0 && template_fd_ >= 0)) {
            if (broken_) break;
            if (!driving_) drive_once(lk, std::nullopt);
            else cv_.wait(lk);
        }
        while (driving_) cv_.wait(lk);
        retiring_all_ = true;
        for (auto& w : slots_) {
            if (w->state == worker_slot::phase::ready) retire(*w);
            else if (w->state == worker_slot::phase::hello || w->state == worker_slot::phase::setup)
                ended(*w); // not set up yet: closing the channel ends it quietly, no finalizer to run
        }
        auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
        while (live_count() > 0 && std::chrono::steady_clock::now() < deadline) drive_once(lk, deadline);
        shut_down_ = true;
        std::vector<std::byte>().swap(spare_frame_);
        fail_everything(std::make_exception_ptr(pool_closed("procpool: the pool was shut down")));
        lk.unlock();
        close_all();
    }

    [[nodiscard]] std::vector<long> pids() const {
        std::lock_guard lk(m_);
        std::vector<long> out;
        for (auto& w : slots_)
            if (w->state != worker_slot::phase::closed) out.push_back(w->pid);
        return out;
    }

    /// A buffer of at least `bytes` capacity whose pages are already touched (a finished large frame), or an empty
    /// one: encoding 64 MiB into fresh pages costs several times the copy itself.
    [[nodiscard]] std::vector<std::byte> take_frame_buffer(std::size_t bytes) {
        std::lock_guard lk(m_);
        if (spare_frame_.capacity() < bytes) return {};
        std::vector<std::byte> b;
        b.swap(spare_frame_);
        b.clear();
        return b;
    }

    [[nodiscard]] platform::pid_type owner() const noexcept { return owner_; }
    [[nodiscard]] std::size_t size() const noexcept { return target_; }

private:
    // ---- starting workers -------------------------------------------------------------------------------
    [[nodiscard]] std::string template_name() const {
        return opts_.start == start_method::forkserver ? "forkserver" : "fork template";
    }

    [[nodiscard]] bool forks() const noexcept {
        return opts_.start == start_method::fork || opts_.start == start_method::forkserver;
    }

    /// Starts the process every worker is forked from: a fork of this process (fork), or a spawned copy of the
    /// executable that has run only static initialization (forkserver).
    void start_template() {
#if PROCPOOL_WINDOWS
        throw start_error(std::string("procpool: start_method::") +
                          (opts_.start == start_method::fork ? "fork" : "forkserver") +
                          " is not available on Windows, which has no fork(); use start_method::spawn (the "
                          "default), as Python does there.");
#else
        if (opts_.start == start_method::forkserver) return start_forkserver();
        int threads = platform::thread_count();
        if (threads > 1) {
            std::string msg = "procpool: start_method::fork refused: this process has " + std::to_string(threads) +
                              " threads. fork() copies only the calling thread, so a lock another thread holds "
                              "(in malloc, a logger, any mutex) stays locked forever in the workers and can "
                              "deadlock them. Construct the pool before starting threads, or use "
                              "start_method::spawn or start_method::forkserver; pool_options::on_threads = "
                              "threaded_fork::warn forks anyway.";
            if (opts_.on_threads == threaded_fork::refuse) throw start_error(msg);
            log(log_level::info, [&] { return "warning: " + msg; });
        }
        platform::native_handle mine = -1, theirs = -1;
        platform::make_channel(mine, theirs);
        own_handle(mine);
        auto parent = platform::current_pid();
        auto pid = platform::fork_process();
        if (pid == 0) {
            platform::close_handle(mine);
            run_fork_template(theirs, parent, false);
        }
        platform::close_handle(theirs);
        template_pid_ = pid;
        template_fd_ = mine;
        log(log_level::debug, [&] { return "fork template started, pid " + std::to_string(pid); });
#endif
    }

#if PROCPOOL_POSIX
    /// Spawns the forkserver and waits for it to say it is serving (or that main() has no serve_if_worker).
    void start_forkserver() {
        platform::native_handle mine = -1;
        template_pid_ = spawn_with_channel(forkserver_flag, mine);
        own_handle(mine);
        template_fd_ = mine;
        std::string why;
        std::vector<platform::poll_item> it{{mine, false}};
        platform::wait_any(it, static_cast<int>(opts_.start_timeout.count()));
        if (!it[0].readable && !it[0].hangup) {
            why = "did not start within " + std::to_string(opts_.start_timeout.count()) +
                  " ms (it runs static initialization and main() up to serve_if_worker; is main() blocked before it?)";
        } else {
            worker_channel chan(mine);
            frame_type type{};
            std::span<const std::byte> payload;
            try {
                if (!chan.receive(type, payload)) why = "ended before it was ready";
                else if (type == frame_type::guard_missing) why = decode<std::string>(payload);
                else if (type != frame_type::ready) why = std::string("sent an unexpected ") + frame_type_name(type) + " frame";
            } catch (const std::exception& e) {
                why = std::string("sent a corrupt frame: ") + e.what();
            }
        }
        if (why.empty()) {
            log(log_level::debug, [&] { return "forkserver started, pid " + std::to_string(template_pid_); });
            return;
        }
        release_handle(template_fd_);
        platform::close_handle(template_fd_);
        template_fd_ = -1;
        auto st = platform::reap_or_kill(template_pid_, 1000);
        template_pid_ = 0;
        if (why.rfind("procpool: ", 0) == 0) throw start_error(why); // the guard message speaks for itself
        throw start_error("procpool: the forkserver process " + why + " (it " + describe_exit(st) +
                          "). A spawned forkserver must reach procpool::serve_if_worker(argc, argv), the first "
                          "line of main().");
    }
#endif

    /// Starts one worker (asynchronously: it becomes ready when its handshake completes).
    void launch(std::unique_lock<std::mutex>&) {
        if (forks()) {
            char cmd = 'w';
            if (!platform::write_all(template_fd_, &cmd, 1))
                throw start_error("procpool: the " + template_name() + " process is gone; cannot start a worker");
            ++template_pending_;
            return;
        }
        platform::native_handle mine = -1;
        auto pid = spawn_with_channel(worker_flag, mine);
        add_slot(pid, mine, false);
    }

    /// Spawns the executable as `flag` (a worker or the forkserver); `mine` is our end of its channel.
    static platform::pid_type spawn_with_channel(const char* flag, platform::native_handle& mine) {
        platform::native_handle theirs = -1;
        platform::make_channel(mine, theirs);
        platform::pid_type pid = 0;
        try {
            pid = platform::spawn_self({flag, std::to_string(platform::current_pid())},
                                       {std::string(worker_env) + "=" + platform::child_channel_token(theirs)},
                                       theirs);
        } catch (...) {
            platform::close_handle(mine);
            platform::close_handle(theirs);
            throw;
        }
        platform::close_handle(theirs);
        return pid;
    }

    void add_slot(platform::pid_type pid, platform::native_handle fd, bool from_template) {
        platform::set_nonblocking(fd, true);
        platform::enlarge_buffers(fd, 1 << 20);
        own_handle(fd);
        auto w = std::make_unique<worker_slot>();
        w->pid = pid;
        w->fd = fd;
        w->index = next_index_++;
        w->from_template = from_template;
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
    /// One round: poll the channels without the lock, then handle everything that arrived.
    void drive_once(std::unique_lock<std::mutex>& lk, std::optional<std::chrono::steady_clock::time_point> deadline) {
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
        auto& items = poll_items_; // reused: this runs once per wait
        auto& who = poll_slots_;
        items.clear();
        who.clear();
        for (auto& w : slots_) {
            if (w->state == worker_slot::phase::closed) continue;
            items.push_back({w->fd, !w->out.empty()});
            who.push_back(w.get());
        }
        items.push_back({wake_r_, false});
        if (template_fd_ >= 0) items.push_back({template_fd_, false});
        int timeout = -1;
        auto now_ms = platform::now_ms();
        if (deadline) {
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(*deadline - std::chrono::steady_clock::now());
            timeout = static_cast<int>(std::max<std::int64_t>(0, left.count() + 1));
        }
        for (auto* w : who) { // handshakes and running tasks have deadlines of their own
            std::int64_t until = 0;
            if (w->state == worker_slot::phase::hello || w->state == worker_slot::phase::setup)
                until = w->started_ms + opts_.start_timeout.count();
            else if (w->deadline_ms)
                until = w->deadline_ms;
            if (!until) continue;
            auto left = static_cast<int>(std::max<std::int64_t>(0, until - now_ms));
            timeout = timeout < 0 ? left : std::min(timeout, left);
        }
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
                for (auto* w : who) {
                    if (!w->ring_on) continue;
                    w->ring->control().parent_sleeping.store(1, std::memory_order_seq_cst);
                    data = data || w->ring->control().head.load(std::memory_order_seq_cst) != w->ring_tail;
                }
                platform::wait_any(items, data ? 0 : timeout);
                for (auto* w : who)
                    if (w->ring_on) w->ring->control().parent_sleeping.store(0, std::memory_order_relaxed);
                return true;
            };
            if (answers_due && timeout != 0) spin_.wait([&] { return platform::wait_any(items, 0), ready(); }, block);
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
        if (template_fd_ >= 0 && (items.back().readable || items.back().hangup)) read_template(false);
        for (std::size_t i = 0; i < who.size(); ++i) {
            auto* w = who[i];
            if (w->state == worker_slot::phase::closed) continue;
            if (items[i].writable) flush(*w);
            if (items[i].readable || items[i].hangup) {
                receive(*w);
            } else if (w->ring_has_data()) {
                try {
                    drain_ring(*w, false);
                } catch (const protocol_error& e) {
                    corrupt(*w, e);
                }
            }
        }
        now_ms = platform::now_ms();
        for (auto* w : who) {
            if ((w->state == worker_slot::phase::hello || w->state == worker_slot::phase::setup) &&
                now_ms - w->started_ms > opts_.start_timeout.count()) {
                start_failed(*w, "did not complete its handshake within " + std::to_string(opts_.start_timeout.count()) +
                                     " ms");
            } else if (w->state != worker_slot::phase::closed && w->deadline_ms && now_ms >= w->deadline_ms &&
                       !w->inflight.empty()) {
                const auto& running = w->inflight.front();
                kill(*w, std::make_exception_ptr(task_timeout(
                             "procpool: task \"" + running.state->task + "\" exceeded its timeout of " +
                             std::to_string(running.timeout_ms) + " ms; worker pid " + std::to_string(w->pid) +
                             " was killed and replaced")));
            }
        }
        reap_closed();
        dispatch();
        // Report without the driver role: a callback that waits on a future or shuts the pool down drives it.
        guard.release();
        report_losses(lk);
        if (!pending_callbacks().empty()) { // done-callbacks of states this round completed: never under the lock
            lk.unlock();
            run_pending_callbacks();
            lk.lock();
        }
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
            try {
                for (const auto& e : events) opts_.on_worker_lost(e);
            } catch (...) {
                lk.lock();
                reporting_ = false;
                throw;
            }
            lk.lock();
            reporting_ = false;
        }
    }

    /// Before submit returns, the job's lent runs (the caller's argument bytes) are written to its worker, or
    /// copied. Zero-copy when the job went to an idle worker: that worker reads the frame at once, into the
    /// argument's storage (worker_channel streams it), while this thread writes it. A job still queued, or sent
    /// ahead behind a running one, takes a copy at once (it may wait, or be requeued if its worker dies). Lock
    /// held, and the driving role (no other thread touches a channel); the lock is released while waiting for
    /// the socket.
    void settle_lent(std::unique_lock<std::mutex>& lk, const void* owner) {
        try {
            write_lent(lk, owner);
        } catch (...) { // no memory for a copy: the job fails (and a worker holding part of its frame goes)
            if (!lk.owns_lock()) lk.lock();
            for (auto& s : slots_)
                for (auto& j : s->inflight)
                    if (j.state.get() == owner) {
                        kill(*s, std::current_exception());
                        return;
                    }
            for (auto it = queue_.begin(); it != queue_.end(); ++it)
                if (it->state.get() == owner) {
                    it->state->fail(std::current_exception());
                    queue_.erase(it);
                    cv_.notify_all();
                    return;
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

    void write_lent(std::unique_lock<std::mutex>& lk, const void* owner) {
        constexpr std::int64_t patience_ms = 100; // without a byte written: the worker stopped reading
        auto last_progress = platform::now_ms();
        std::size_t left = static_cast<std::size_t>(-1);
        for (;;) {
            for (auto& q : queue_)
                if (q.state.get() == owner) return take_lent(q);
            worker_slot* w = nullptr;
            job* jp = nullptr;
            for (auto& s : slots_)
                for (std::size_t i = 0; i < s->inflight.size() && !jp; ++i)
                    if (s->inflight[i].state.get() == owner) {
                        w = s.get();
                        jp = &s->inflight[i];
                        if (i != 0) { // sent ahead: may be requeued, so it needs its whole frame
                            own_output(*w, owner);
                            return take_lent(*jp);
                        }
                    }
            if (!jp) return; // answered or failed: nothing of it is left in any output (own_output, ended)
            flush(*w);
            std::size_t now_left = 0;
            for (const auto& seg : w->out)
                if (seg.is_borrowed() && seg.owner == owner) now_left += seg.borrowed.size() - seg.pos;
            if (now_left == 0 || w->state == worker_slot::phase::closed) {
                jp->lent.clear(); // the front job is never sent again (no retries): its frame is not needed whole
                return;
            }
            auto now = platform::now_ms();
            if (now_left < left) {
                left = now_left;
                last_progress = now;
            } else if (now - last_progress > patience_ms) {
                own_output(*w, owner); // the rest goes out from a copy, when the worker reads again
                jp->lent.clear();
                return;
            }
            std::vector<platform::poll_item> items{{w->fd, true}};
            lk.unlock();
            try {
                platform::wait_any(items, 1);
            } catch (...) {
                lk.lock();
                throw;
            }
            lk.lock();
            if (items[0].hangup) { // dying: the driving thread reports it; the bytes are of no use now
                for (auto& s : slots_)
                    if (s.get() == w) {
                        own_output(*w, owner);
                        for (auto& j : w->inflight)
                            if (j.state.get() == owner) j.lent.clear();
                    }
                return;
            }
        }
    }

    /// Starts the clock of the job now at the front of `w` (the one the worker runs next).
    static void arm(worker_slot& w) {
        w.deadline_ms = (!w.inflight.empty() && w.inflight.front().timeout_ms > 0)
                            ? platform::now_ms() + w.inflight.front().timeout_ms
                            : 0;
    }

    void wake() {
        char b = 1;
        platform::write_some(wake_w_, &b, 1);
    }

    /// Reads what the template process reports: workers it started (with their channel), children that ended.
    void read_template([[maybe_unused]] bool block_one) {
#if PROCPOOL_POSIX
        bool first = true;
        for (;;) {
            if (!first || !block_one) {
                std::vector<platform::poll_item> it{{template_fd_, false}};
                platform::wait_any(it, 0);
                if (!it[0].readable && !it[0].hangup) return;
            }
            first = false;
            template_record rec{};
            platform::native_handle fd = -1;
            if (!platform::recv_handle(template_fd_, fd, &rec, sizeof rec)) {
                template_gone();
                return;
            }
            if (rec.kind == 1 && fd >= 0) {
                --template_pending_;
                add_slot(rec.pid, fd, true);
            } else if (rec.kind == 2) {
                template_exits_[rec.pid] = platform::exit_status{rec.code, rec.signal};
            } else {
                --template_pending_;
                if (fd >= 0) platform::close_handle(fd);
                broken(std::make_exception_ptr(start_error("procpool: the " + template_name() + " could not fork a worker (errno " +
                                                           std::to_string(rec.code) + ")")));
            }
        }
#endif
    }

    void template_gone() {
        release_handle(template_fd_);
        platform::close_handle(template_fd_);
        template_fd_ = -1;
        if (template_pid_ > 0) {
            auto st = platform::reap_or_kill(template_pid_, 1000);
            template_pid_ = 0;
            if (!shut_down_ && !retiring_all_)
                broken(std::make_exception_ptr(start_error("procpool: the " + template_name() + " process " + describe_exit(st) +
                                                           "; no more workers can be started")));
        }
    }

    static constexpr std::size_t max_spare_frame = std::size_t{1} << 30;

    /// Keeps the largest finished job frame (up to 1 GiB) for take_frame_buffer. Lock held.
    void recycle_frame(std::vector<std::byte>&& f) {
        if (shut_down_ || f.capacity() > max_spare_frame || f.capacity() <= spare_frame_.capacity()) return;
        spare_frame_ = std::move(f);
    }

    // ---- channel I/O ----------------------------------------------------------------------------------------
    static constexpr std::size_t borrow_bytes = 64 * 1024;  // job frames from this size are written in place
    static constexpr std::size_t spare_bytes = 256 * 1024;  // larger output buffers are not kept

    /// Queues `frame` for `w`; `owner`: the job whose frame it is, which outlives its bytes in `out` (see
    /// out_segment): a large one is written in place.
    static void append(worker_slot& w, std::span<const std::byte> frame, const void* owner = nullptr) {
        if (owner && frame.size() >= borrow_bytes) {
            w.out.push_back(out_segment{{}, frame, 0, owner});
            return;
        }
        if (frame.empty()) return;
        if (w.out.empty() || w.out.back().is_borrowed()) {
            w.out.emplace_back();
            w.out.back().owned = std::move(w.spare);
            w.spare.clear();
        }
        auto& o = w.out.back().owned;
        o.insert(o.end(), frame.begin(), frame.end());
    }

    /// Writes what the socket takes of `w`'s output.
    static void flush(worker_slot& w) {
        while (!w.out.empty()) {
            auto& seg = w.out.front();
            auto bytes = seg.bytes();
            while (seg.pos < bytes.size()) {
                auto n = platform::write_some(w.fd, bytes.data() + seg.pos, bytes.size() - seg.pos);
                if (n <= 0) return; // full (poll reports writable), or gone (the reader side reports the death)
                seg.pos += static_cast<std::size_t>(n);
            }
            if (!seg.is_borrowed() && seg.owned.capacity() <= spare_bytes) {
                seg.owned.clear();
                w.spare = std::move(seg.owned);
            }
            w.out.pop_front();
        }
    }

    /// Copies borrowed bytes still unwritten into `w`'s own buffers: their job is about to go away, or its lent
    /// runs are (`owner`'s only, or every job's when null).
    static void own_output(worker_slot& w, const void* owner = nullptr) {
        for (auto& seg : w.out) {
            if (!seg.is_borrowed() || (owner && seg.owner != owner)) continue;
            auto rest = seg.borrowed.subspan(seg.pos);
            seg.owned.assign(rest.begin(), rest.end());
            seg.borrowed = {};
            seg.owner = nullptr;
            seg.pos = 0;
        }
    }

    /// Queues a job's frame, with its lent runs in place.
    static void append_job(worker_slot& w, const job& j) {
        const void* owner = j.state.get();
        const std::span<const std::byte> frame(j.frame);
        std::size_t at = 0;
        for (const auto& r : j.lent) {
            append(w, frame.subspan(at, r.at - at), owner);
            w.out.push_back(out_segment{{}, r.bytes, 0, owner});
            at = r.at;
        }
        append(w, frame.subspan(at), owner);
    }

    void send(worker_slot& w, const std::vector<std::byte>& frame) {
        append(w, frame);
        flush(w);
    }

    void receive(worker_slot& w) {
        // A bounded read per round: a worker that floods its channel cannot starve the others (poll reports
        // it again in the next round).
        std::size_t budget = std::size_t{16} << 20;
        for (;;) {
            auto space = w.in.prepare();
            auto n = platform::read_some(w.fd, space.data(), space.size());
            if (n > 0) w.in.commit(static_cast<std::size_t>(n));
            try {
                while (w.state != worker_slot::phase::closed) {
                    auto f = w.in.next(PROCPOOL_MAX_FRAME_BYTES);
                    if (!f) break;
                    channel_frame(w, f->first, f->second);
                }
                // At end of stream, what it published before it ended counts (a result is never blamed for a
                // crash that came after it).
                if (w.state != worker_slot::phase::closed) drain_ring(w, false);
            } catch (const protocol_error& e) {
                corrupt(w, e);
                return;
            }
            if (w.state == worker_slot::phase::closed) return;
            if (n < 0) {
                ended(w);
                return;
            }
            if (n == 0) return;
            if (static_cast<std::size_t>(n) < space.size()) return; // drained: no second recv to learn it
            if (static_cast<std::size_t>(n) >= budget) return;
            budget -= static_cast<std::size_t>(n);
        }
    }

    void close_ring_fd(worker_slot& w) {
        if (w.ring_fd == platform::invalid_handle) return;
        release_handle(w.ring_fd);
        platform::close_handle(w.ring_fd);
        w.ring_fd = platform::invalid_handle;
    }

    void corrupt(worker_slot& w, const protocol_error& e) {
        kill(w, std::make_exception_ptr(protocol_error(
                    "procpool: worker pid " + std::to_string(w.pid) + " sent a corrupt frame: " + e.what(), e.offset())));
    }

    /// A frame from the channel. With a ring, it is a doorbell, or the frame of the next `ring` record: the
    /// records before that one are handled first.
    void channel_frame(worker_slot& w, frame_type type, std::span<const std::byte> payload) {
        if (!w.ring_on) return handle(w, type, payload);
        if (type == frame_type::ring) return; // a doorbell: the ring is read below
        if (!drain_ring(w, true))
            throw protocol_error(std::string("procpool: a ") + frame_type_name(type) +
                                     " frame came on the channel without its record in the result ring",
                                 0);
        if (w.state != worker_slot::phase::closed) handle(w, type, payload);
    }

    /// Handles the ring's records up to its head, or up to a `ring` record (whose frame is on the channel):
    /// with `take_mark`, that record is consumed and true returned. Wakes a worker waiting for room.
    bool drain_ring(worker_slot& w, bool take_mark) {
        if (!w.ring_on) return false;
        auto& ring = *w.ring;
        auto& c = ring.control();
        const auto head = c.head.load(std::memory_order_acquire);
        if (head - w.ring_tail > ring.bytes())
            throw protocol_error("procpool: the result ring's head (" + std::to_string(head) + ") is corrupt", 0);
        bool took = false;
        std::uint64_t t = w.ring_tail;
        while (t != head && w.state != worker_slot::phase::closed) {
            if (head - t < frame_header_size) throw protocol_error("procpool: a truncated record in the result ring", 0);
            const std::byte* at = ring.at(t);
            auto h = parse_frame_head(at, ring_max_record);
            const auto size = frame_header_size + h.length;
            if (size > head - t) throw protocol_error("procpool: a truncated record in the result ring", 0);
            if (h.type == frame_type::ring) {
                if (take_mark) {
                    t += size;
                    took = true;
                }
                break;
            }
            handle(w, h.type, std::span<const std::byte>(at + frame_header_size, h.length));
            t += size;
        }
        w.ring_tail = t;
        c.tail.store(t, std::memory_order_seq_cst);
        if (c.worker_waiting.load(std::memory_order_seq_cst) && c.worker_waiting.exchange(0))
            platform::wake_shared(c.worker_waiting);
        return took;
    }

    // ---- frames from a worker ------------------------------------------------------------------------------
    void handle(worker_slot& w, frame_type type, std::span<const std::byte> payload) {
        using P = worker_slot::phase;
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
            w.plugins_sent = s.plugins.size();
            w.state = P::setup;
            if (!w.ring || !w.out.empty()) {
                w.ring.reset();
                close_ring_fd(w);
                send(w, make_frame(frame_type::setup, s));
                return;
            }
            s.result_ring = static_cast<std::uint32_t>(result_ring_bytes);
            const auto frame = make_frame(frame_type::setup, s);
#if !PROCPOOL_WINDOWS
            const bool sent = platform::send_handle(w.fd, w.ring_fd, frame.data(), frame.size());
#else
            const bool sent = false;
#endif
            close_ring_fd(w); // the worker has its own descriptor now (or none: then it is refused below)
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
            log(log_level::debug, [&] { return "worker pid " + std::to_string(w.pid) + " ready"; });
            dispatch();
            return;
        case frame_type::init_failed: {
            if (w.state != P::setup) break;
            auto rec = decode<exception_record>(payload);
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
            own_output(w, front.state.get()); // answered before it was all sent: a broken worker, but no dangling
            if (front.frame.size() >= borrow_bytes) recycle_frame(std::move(front.frame));
            {
                auto now = std::chrono::steady_clock::now();
                double us = std::chrono::duration<double, std::micro>(now - w.busy_since).count();
                w.task_us = w.task_us <= 0 ? us : w.task_us + (us - w.task_us) / 8;
                w.busy_since = now; // the next job started when this one ended
            }
            w.inflight.pop_front();
            arm(w);
            cv_.notify_all();
            if (opts_.max_memory_per_worker && w.state == P::ready && !w.over_memory) {
                auto rss = platform::resident_bytes(w.pid);
                if (rss > opts_.max_memory_per_worker) {
                    w.over_memory = true; // takes no new job; retires once the jobs sent ahead are done
                    log(log_level::info, [&] { return "worker pid " + std::to_string(w.pid) + " uses " + std::to_string(rss) + " bytes, over max_memory_per_worker: retiring it"; });
                }
            }
            bool recycle = opts_.max_tasks_per_worker && w.assigned >= opts_.max_tasks_per_worker;
            if ((recycle || w.over_memory) && w.inflight.empty() && w.state == P::ready) {
                log(log_level::info, [&] { return "worker pid " + std::to_string(w.pid) + " recycled after " + std::to_string(w.assigned) + " tasks"; });
                retire(w);
                if (!broken_ && (!closed_ || !queue_.empty())) launch_replacement();
            }
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
            if (opts_.leak_audit == leak_policy::retire || opts_.leak_audit == leak_policy::fail) w.over_memory = true;
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

    // ---- dispatch ---------------------------------------------------------------------------------------------
    /// How many jobs `w` may hold: about 1 ms of work, from its recent job times (2 until it has one).
    [[nodiscard]] std::size_t depth(const worker_slot& w) const noexcept {
        // With the leak audit on, one job at a time: a job sent ahead would run before the audit's verdict on the
        // one before it arrives (contexts re-sent, worker retired), in the polluted worker.
        if (opts_.leak_audit != leak_policy::off) return 1;
        if (opts_.prefetch) return opts_.prefetch;
        if (w.task_us <= 0) return 2;
        return static_cast<std::size_t>(std::clamp(std::ceil(1000.0 / w.task_us), 2.0, 128.0));
    }

    /// Whether `w` takes another job now.
    [[nodiscard]] bool takes_job(const worker_slot& w) const noexcept {
        return w.state == worker_slot::phase::ready && !w.over_memory &&
               !(opts_.max_tasks_per_worker && w.assigned >= opts_.max_tasks_per_worker) && w.inflight.size() < depth(w);
    }

    void dispatch() {
        if (queue_.empty()) return;
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
            flush(*w);
        }
    }

    /// Moves the next queued job to `w`'s output (written by the caller's flush).
    void send_job(worker_slot& w) {
        job j = std::move(queue_.front());
        queue_.pop_front();
        ++w.assigned;
        if (plugins().count.load(std::memory_order_acquire) > w.plugins_sent) {
            auto all = loaded_plugins();
            append(w, make_frame(frame_type::plugins,
                                 std::vector<std::string>(all.begin() + static_cast<std::ptrdiff_t>(w.plugins_sent), all.end())));
            w.plugins_sent = all.size();
        }
        if (j.contexts && j.contexts != w.applied) {
            auto delta = context_delta(w.applied.get(), *j.contexts);
            if (!delta.empty()) append(w, make_frame(frame_type::context, delta));
            w.applied = j.contexts;
        }
        append_job(w, j);
        w.unflushed = true;
        log(log_level::debug, [&] { return "dispatch \"" + j.state->task + "\" to worker pid " + std::to_string(w.pid); });
        if (w.inflight.empty()) w.busy_since = std::chrono::steady_clock::now();
        w.inflight.push_back(std::move(j));
        if (w.inflight.size() == 1) arm(w);
    }

    void retire(worker_slot& w) {
        w.state = worker_slot::phase::retiring;
        send(w, make_empty_frame(frame_type::retire));
    }

    void launch_replacement() {
        std::unique_lock<std::mutex> dummy; // launch() does not use the lock; it only documents it is held
        try {
            launch(dummy);
        } catch (...) {
            broken(std::current_exception());
        }
    }

    // ---- endings ----------------------------------------------------------------------------------------------
    void kill(worker_slot& w, std::exception_ptr reason) {
        w.kill_reason = std::move(reason);
        platform::kill_process(w.pid);
        ended(w);
    }

    /// A worker failed before it was ready (refused handshake, missing guard): tasks are not lost.
    void refuse(worker_slot& w, const std::string& message) {
        platform::kill_process(w.pid);
        w.kill_reason = std::make_exception_ptr(start_error(message));
        ended(w);
    }

    void start_failed(worker_slot& w, const std::string& why) {
        refuse(w, "procpool: worker pid " + std::to_string(w.pid) + " " + why + ".");
    }

    /// The channel closed: collect the exit status, fail the running job, requeue the rest, replace the worker.
    void ended(worker_slot& w) {
        using P = worker_slot::phase;
        auto was = w.state;
        w.state = P::closed;
        w.out.clear(); // unwritten bytes, some borrowed from the jobs requeued below
        close_ring_fd(w);
        release_handle(w.fd);
        platform::close_handle(w.fd);
        w.fd = -1;
        platform::exit_status st = collect_status(w);
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
            return;
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
                running.failures.push_back(cause);
                if (running.failures.size() <= opts_.max_retries) {
                    log(log_level::info, [&] { return "retrying task \"" + running.state->task + "\" (" + cause + ")"; });
                    queue_.push_front(std::move(running));
                } else {
                    std::string msg = "procpool: " + cause + " while running task \"" + running.state->task + "\"";
                    if (running.failures.size() > 1) {
                        msg += "; it was run " + std::to_string(running.failures.size()) + " times and killed its worker every time:";
                        for (std::size_t i = 0; i < running.failures.size(); ++i)
                            msg += (i ? "; " : " ") + std::string("attempt ") + std::to_string(i + 1) + ": " + running.failures[i];
                    }
                    running.state->fail(std::make_exception_ptr(
                        worker_died(msg, running.state->task, w.pid, st.code, st.signal)));
                }
            }
            cv_.notify_all();
        } else {
            lost("", "worker pid " + std::to_string(w.pid) + " " + describe_exit(st) + " while idle");
        }
        if (!closed_ && !broken_) launch_replacement();
        else if (closed_ && !broken_ && !retiring_all_ && (!queue_.empty() || in_flight() > 0)) launch_replacement();
    }

    platform::exit_status collect_status(worker_slot& w) {
        if (!w.from_template) return platform::reap_or_kill(w.pid, 2000);
        // Workers forked by the template are its children: it reports their status.
        auto deadline = platform::now_ms() + 2000;
        bool killed = false;
        while (template_fd_ >= 0) {
            auto it = template_exits_.find(w.pid);
            if (it != template_exits_.end()) {
                auto st = it->second;
                template_exits_.erase(it);
                return st;
            }
            if (!killed && platform::now_ms() > deadline) {
                platform::kill_process(w.pid);
                killed = true;
            }
            std::vector<platform::poll_item> it2{{template_fd_, false}};
            platform::wait_any(it2, 100);
            if (it2[0].readable || it2[0].hangup) read_template(false);
        }
        return platform::exit_status{};
    }

    void reap_closed() {
        std::erase_if(slots_, [](const std::unique_ptr<worker_slot>& w) { return w->state == worker_slot::phase::closed; });
    }

    void broken(std::exception_ptr e) {
        if (!broken_) broken_ = e;
        fail_everything(broken_);
    }

    void fail_everything(std::exception_ptr e) {
        for (auto& j : queue_) j.state->fail(e);
        queue_.clear();
        for (auto& w : slots_) {
            own_output(*w); // the stream stays whole for the retire frame
            for (auto& j : w->inflight) j.state->fail(e);
            w->inflight.clear();
        }
        cv_.notify_all();
    }

    void close_all() noexcept {
        std::lock_guard lk(m_);
        for (auto& w : slots_) {
            if (w->state == worker_slot::phase::closed) continue;
            close_ring_fd(*w);
            release_handle(w->fd);
            platform::close_handle(w->fd); // the worker sees end of stream and exits
            w->state = worker_slot::phase::closed;
            if (!w->from_template) platform::reap_or_kill(w->pid, 2000);
            else platform::kill_process(w->pid);
        }
        slots_.clear();
        if (template_fd_ >= 0) {
            release_handle(template_fd_);
            platform::close_handle(template_fd_);
            template_fd_ = -1;
        }
        if (template_pid_ > 0) {
            platform::reap_or_kill(template_pid_, 2000);
            template_pid_ = 0;
        }
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
        return static_cast<std::size_t>(std::count_if(slots_.begin(), slots_.end(), [](auto& w) { return w->state == worker_slot::phase::ready; }));
    }
    [[nodiscard]] std::size_t live_count() const {
        return static_cast<std::size_t>(std::count_if(slots_.begin(), slots_.end(), [](auto& w) { return w->state != worker_slot::phase::closed; }));
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
    std::vector<std::unique_ptr<worker_slot>> slots_;
    std::deque<job> queue_;
    platform::native_handle wake_r_ = -1, wake_w_ = -1;
    platform::pid_type template_pid_ = 0;
    platform::native_handle template_fd_ = -1;
    int template_pending_ = 0;
    std::map<platform::pid_type, platform::exit_status> template_exits_;
    std::vector<worker_lost> lost_; // deaths seen in this round, reported after it without the lock
    std::vector<platform::poll_item> poll_items_;
    std::vector<worker_slot*> poll_slots_;
    std::vector<std::byte> spare_frame_; // a large finished job frame, for the next large submit (fresh pages are slow)
};

} // namespace detail

PROCPOOL_END_NAMESPACE

#endif // PROCPOOL_DETAIL_PROCESS_ENGINE_HPP
