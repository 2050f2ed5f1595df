// SPDX-License-Identifier: BSL-1.0
// procpool/future.hpp: future<T>, the shared state behind it, and waiting on many futures.
#ifndef PROCPOOL_FUTURE_HPP
#define PROCPOOL_FUTURE_HPP

#include <procpool/codec.hpp>
#include <procpool/config.hpp>
#include <procpool/error.hpp>

#include <atomic>
#include <chrono>
#include <concepts>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <future>
#include <iterator>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

// co_await support needs no <coroutine> here: a coroutine's own file includes it, and the awaiter takes the
// handle it is given as whatever type that is (std::coroutine_handle<P>), so files without coroutines skip the header.
#if defined(__cpp_impl_coroutine)
#define PROCPOOL_DETAIL_HAS_COROUTINES 1
#else
#define PROCPOOL_DETAIL_HAS_COROUTINES 0
#endif

PROCPOOL_BEGIN_NAMESPACE

namespace detail {

struct state_base;

/// A free index of `slots` (one of `free`, else a new one at the end). The caller fills the slot.
template <class Slot>
std::size_t take_slot(std::vector<Slot>& slots, std::vector<std::size_t>& free) {
    if (free.empty()) {
        slots.emplace_back();
        return slots.size() - 1;
    }
    const std::size_t i = free.back();
    free.pop_back();
    return i;
}

/// What a future needs from the pool that completes it: progress, and cancellation of queued work.
class engine {
public:
    virtual ~engine() = default;
    /// Makes progress until `s` is done or `deadline` passes. Returns whether it is done.
    virtual bool wait(state_base& s, std::optional<std::chrono::steady_clock::time_point> deadline) = 0;
    /// Makes progress until one of `states` is done; returns its index.
    virtual std::size_t wait_any(std::span<state_base* const> states) = 0;
    /// Removes a queued (not yet dispatched) job. Returns false when it already started or finished.
    virtual bool cancel(state_base& s) = 0;
    /// Wakes every thread inside wait() or wait_any() of this engine (a driver blocked on its channels, the others
    /// on the condition), so that each looks at its states again: one of them may have been completed from outside
    /// the engine (a signal_state of a wait over several pools). Must not be called with the engine's lock held.
    virtual void interrupt() = 0;
};

/// Told when a state completes (as_completed, wait_any over several pools). Called with the completing pool's
/// lock held: it only records the event and wakes a thread, never calls into a pool or user code.
class completion_listener {
public:
    virtual void completed(std::size_t tag) noexcept = 0;

protected:
    ~completion_listener() = default;
};

/// Done-callbacks whose state completed on this thread, run when the thread no longer holds a pool's lock
/// (run_pending_callbacks). Per thread, so that a callback runs on the thread that completed its state.
PROCPOOL_DECL std::vector<std::function<void()>>& pending_callbacks() noexcept;

/// Runs one done-callback; an exception it throws is contained and logged (at log_level::info).
PROCPOOL_DECL void run_callback(std::function<void()>& f) noexcept;

/// Runs the done-callbacks this thread has collected. Called where no pool lock is held: after a wait, a submit,
/// a cancel, a shutdown, and by a driving thread after each round once it has released the pool's lock.
PROCPOOL_DECL void run_pending_callbacks() noexcept;

/// Runs the pending callbacks when a waiting call returns, also by an exception.
struct callbacks_after {
    callbacks_after() = default;
    callbacks_after(const callbacks_after&) = delete;
    callbacks_after& operator=(const callbacks_after&) = delete;
    ~callbacks_after() { run_pending_callbacks(); }
};

PROCPOOL_DECL std::exception_ptr exception_from_record(const exception_record& rec);

/// Reads a failed outcome's exception record (after its `false`) and returns it as an exception. Not a template,
/// so that decoding the record is compiled once (detail/future_impl.hpp), not for every result type.
PROCPOOL_DECL std::exception_ptr read_task_error(reader& r);

/// A batch result whose count is not its chunk's. \throws protocol_error.
[[noreturn]] PROCPOOL_DECL void throw_batch_count(std::size_t expected, std::uint64_t got, std::size_t offset);

/// Shared state of one job (a task or a chunk of a map). Completed once, under the pool's lock.
struct state_base {
    std::uint64_t id = 0;
    std::string task;
    std::atomic<bool> done{false};
    std::exception_ptr error;     // the job as a whole failed (worker died, cancelled, pool closed...)
    std::weak_ptr<engine> owner;  // drives progress; weak, so a future does not keep a pool alive
    state_base() = default;
    state_base(const state_base&) = delete;
    state_base& operator=(const state_base&) = delete;
    PROCPOOL_DECL virtual ~state_base();

    /// Reads a result payload (outcome of a task, or count + outcomes of a batch). \throws protocol_error.
    virtual void deliver(reader& r) = 0;

    PROCPOOL_DECL void fail(std::exception_ptr e);
    PROCPOOL_DECL void deliver_payload(std::span<const std::byte> payload);

    /// Marks the state done, tells its listeners, and hands its done-callbacks to this thread's pending list (run
    /// once the pool's lock is released: never under it).
    PROCPOOL_DECL void complete() noexcept;
    /// Tells `l` (with `tag`) when the state completes. False, and nothing registered, when it is already done.
    PROCPOOL_DECL bool listen(completion_listener* l, std::size_t tag);
    /// Removes `l`; once this returns, `l` is not called for this state (a completion in progress has finished).
    PROCPOOL_DECL void unlisten(completion_listener* l) noexcept;
    /// Keeps `f` to run when the state completes. False (and `f` untouched) when it is already done.
    PROCPOOL_DECL bool add_callback(std::function<void()>& f);

private:
    struct hook_list;
    /// A lock of one byte: every queued task has a state, and few are ever watched, so no std::mutex (40 bytes)
    /// per state. Held for a few instructions (a push, or telling the listeners), never while waiting.
    class tiny_lock {
    public:
        void lock() noexcept {
            while (locked_.exchange(true, std::memory_order_acquire))
                while (locked_.load(std::memory_order_relaxed)) std::this_thread::yield();
        }
        void unlock() noexcept { locked_.store(false, std::memory_order_release); }

    private:
        std::atomic<bool> locked_{false};
    };
    PROCPOOL_DECL hook_list& hooks();
    tiny_lock hooks_lock_; // the hooks, and the moment `done` becomes true
    hook_list* hooks_ = nullptr; // allocated by the first listener or callback; owned (deleted by ~state_base)
};

/// A state no job completes: what a wait over several pools hands each engine's wait(), completed (done set) by
/// the waiter when any watched state completes.
struct signal_state final : state_base {
    PROCPOOL_DECL void deliver(reader&) override;
};

/// Reads one outcome: true + value, or false + exception record.
template <class T>
void read_outcome(reader& r, std::optional<T>& value, std::exception_ptr& error) {
    if (r.read<bool>()) {
        if constexpr (std::is_void_v<T>) value.emplace();
        else value.emplace(r.read<T>());
    } else {
        error = read_task_error(r);
    }
}

struct void_value {};
template <class T>
using stored_t = std::conditional_t<std::is_void_v<T>, void_value, T>;

template <class T>
struct value_state final : state_base {
    std::optional<stored_t<T>> value;
    std::exception_ptr task_error;
    void deliver(reader& r) override {
        if (r.read<bool>()) {
            if constexpr (std::is_void_v<T>) value.emplace();
            else value.emplace(r.read<T>());
        } else {
            task_error = read_task_error(r);
        }
    }
};

template <class T>
struct batch_state final : state_base {
    std::vector<std::optional<stored_t<T>>> values;
    std::vector<std::exception_ptr> errors; // empty until an item fails (no per-item cost otherwise), then one per item
    std::size_t first_index = 0; // position of this chunk's first item in the input
    void deliver(reader& r) override {
        auto n = r.read<std::uint64_t>();
        if (n != values.size()) throw_batch_count(values.size(), n, r.offset());
        for (std::size_t i = 0; i < values.size(); ++i) {
            if (r.read<bool>()) {
                if constexpr (std::is_void_v<T>) values[i].emplace();
                else values[i].emplace(r.read<T>());
            } else {
                if (errors.empty()) errors.resize(values.size());
                errors[i] = read_task_error(r);
            }
        }
    }
};

/// Waits for `s`, driving its pool; fails it with pool_closed when the pool is gone.
PROCPOOL_DECL void wait_state(state_base& s,
                              std::optional<std::chrono::steady_clock::time_point> deadline = std::nullopt);

/// The states of many futures, in the order they complete: as_completed, wait_any, map's progress. Linear: each
/// state is registered once and reports its own completion (completion_listener), so taking the next one costs
/// the same whatever the number watched.
///
/// Waiting drives every pool that owns a watched state that is not done. One pool: the calling thread drives it.
/// Several: each is driven by a thread of its own for the duration of that wait (the calling thread drives one),
/// and when any watched state completes every driver is interrupted (engine::interrupt) and joined. No polling, no
/// time slices: each driver blocks on its own pool's channels.
class completion_queue final : public completion_listener {
public:
    completion_queue() = default;
    completion_queue(const completion_queue&) = delete;
    completion_queue& operator=(const completion_queue&) = delete;
    PROCPOOL_DECL ~completion_queue();

    /// Watches `s` under `tag` (a dense index: the caller's position). A state already done is queued at once;
    /// one whose pool is gone is failed with pool_closed first.
    PROCPOOL_DECL void watch(std::shared_ptr<state_base> s, std::size_t tag);
    /// Prepares for tags below `n` (saves the resizing of watch()).
    PROCPOOL_DECL void reserve(std::size_t n);

    /// The tag of the next completed state (each once), waiting and driving the pools until there is one; nothing
    /// when every watched state has been taken.
    PROCPOOL_DECL std::optional<std::size_t> next();

    /// Number of watched states not yet taken by next().
    [[nodiscard]] PROCPOOL_DECL std::size_t open() const;

    PROCPOOL_DECL void completed(std::size_t tag) noexcept override;

private:
    struct entry {
        std::weak_ptr<engine> e;               // weak: waiting does not keep a pool alive
        const engine* raw = nullptr;           // identity, for watch()
        std::size_t pending = 0;               // watched states of this engine not yet completed
        std::unique_ptr<signal_state> signal;  // what this engine's driver waits on: done when anything completes
    };

    /// Drives the engines in `active` until one of the watched states completes.
    PROCPOOL_DECL static void drive(const std::vector<std::pair<std::shared_ptr<engine>, signal_state*>>& active);

    mutable std::mutex m_;
    std::deque<std::size_t> ready_;         // completed, not yet taken
    std::vector<std::shared_ptr<state_base>> watched_; // by tag, while registered with the state
    std::vector<std::size_t> engine_of_;    // by tag: index in engines_
    std::vector<entry> engines_;
    std::size_t open_ = 0;
};

} // namespace detail

/// The result of a task that runs in a worker. Like std::future: get() once, then it is no longer valid.
/// Waiting drives the pool (procpool needs no background thread): results are read, finished workers
/// replaced and queued tasks dispatched while some thread waits.
template <class T>
class future {
public:
    future() noexcept = default;
    /// \cond INTERNAL
    explicit future(std::shared_ptr<detail::value_state<T>> s) noexcept : s_(std::move(s)) {}
    /// \endcond

    /// Waits for the task and returns its result.
    /// \throws the task's exception (standard types as themselves, others as remote_error), worker_died,
    /// task_cancelled or pool_closed.
    T get() {
        require_state();
        auto s = std::move(s_);
        detail::wait_state(*s);
        if (s->error) std::rethrow_exception(s->error);
        if (s->task_error) std::rethrow_exception(s->task_error);
        if constexpr (!std::is_void_v<T>) return std::move(*s->value);
    }

    /// Waits until the result is available.
    void wait() const {
        require_state();
        detail::wait_state(*s_);
    }

    /// Waits at most `d`; std::future_status::ready or timeout.
    template <class Rep, class Period>
    std::future_status wait_for(const std::chrono::duration<Rep, Period>& d) const {
        return wait_until(std::chrono::steady_clock::now() + d);
    }
    /// Waits until `t` at most; std::future_status::ready or timeout.
    template <class Clock, class Duration>
    std::future_status wait_until(const std::chrono::time_point<Clock, Duration>& t) const {
        require_state();
        auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::duration_cast<std::chrono::steady_clock::duration>(t - Clock::now());
        detail::wait_state(*s_, deadline);
        return is_ready() ? std::future_status::ready : std::future_status::timeout;
    }

    /// True until get() is called (or for a default-constructed future, never). get(), wait(), wait_for(),
    /// wait_until() and cancel() on a future that is not valid throw std::future_error (no_state), as
    /// libstdc++'s std::future does.
    [[nodiscard]] bool valid() const noexcept { return s_ != nullptr; }
    /// True when get() would not wait. Does not drive the pool.
    [[nodiscard]] bool is_ready() const noexcept { return s_ && s_->done.load(std::memory_order_acquire); }
    /// Name of the task this future belongs to.
    [[nodiscard]] const std::string& task_name() const noexcept { return s_->task; }

    /// Cancels the task if it has not been sent to a worker yet; get() then throws task_cancelled.
    /// Returns false when it already started or finished.
    bool cancel() {
        require_state();
        if (is_ready()) return false;
        auto e = s_->owner.lock();
        detail::callbacks_after run; // the cancelled task's own done-callbacks
        return e && e->cancel(*s_);
    }

    /// Calls `callback()` once the task is done (Python's add_done_callback); the future keeps the result.
    ///
    /// Where it runs: on the thread that completes the task, which is the thread driving the pool at that moment
    /// (one waiting in get(), wait(), as_completed, map..., or calling shutdown or cancel), right after that round,
    /// once the pool's lock is released: never with the pool's lock held, so the callback may use the pool (submit,
    /// wait on other futures). When the task is already done, it runs at once, in the caller, before on_done
    /// returns. Several callbacks run in the order they were added.
    ///
    /// An exception thrown by the callback is contained: it is logged (log_level::info, PROCPOOL_LOG=info) and
    /// otherwise ignored; it never reaches the waiting thread or another future.
    /// \throws std::future_error (no_state) when the future is not valid.
    template <class F>
        requires std::invocable<F&>
    void on_done(F callback) & {
        require_state();
        std::function<void()> f(std::move(callback));
        if (!s_->add_callback(f)) detail::run_callback(f);
    }

    /// Hands the future to `callback(future<T>)` once the task is done: the callback calls get() without waiting.
    /// Same thread and exception rules as the other overload.
    /// \code
    /// std::move(f).on_done([](procpool::future<int> r) { std::printf("%d\n", r.get()); });
    /// \endcode
    template <class F>
        requires std::invocable<F&, future<T>>
    void on_done(F callback) && {
        require_state();
        auto st = s_;
        // std::function needs a copyable target: the future and the callback are shared by its copies.
        auto held = std::make_shared<std::pair<F, future<T>>>(std::move(callback), std::move(*this));
        std::function<void()> f = [held] { held->first(std::move(held->second)); };
        if (!st->add_callback(f)) detail::run_callback(f);
    }

#if PROCPOOL_DETAIL_HAS_COROUTINES
    /// What `co_await` on a future uses (see operator co_await).
    class awaiter {
    public:
        /// \cond INTERNAL
        explicit awaiter(future* f) noexcept : f_(f) {}
        /// \endcond
        /// Whether the result is there already (then the coroutine does not suspend).
        [[nodiscard]] bool await_ready() const noexcept { return f_->is_ready(); }
        /// Resumes `h` from the task's done-callback; false (resume at once) when the task completed meanwhile.
        /// \throws std::future_error (no_state) when the future is not valid.
        template <class Handle> // std::coroutine_handle<P>
        bool await_suspend(Handle h) {
            f_->require_state();
            std::function<void()> resume = [h] { h.resume(); };
            return f_->s_->add_callback(resume);
        }
        /// The result, as get().
        T await_resume() { return f_->get(); }

    private:
        future* f_;
    };

    /// Awaits the task in a C++20 coroutine: `int v = co_await pool.submit<f>(x);` (or `co_await fut`, which
    /// consumes `fut` as get() does). The coroutine is suspended without blocking a thread and resumed by the task's
    /// done-callback (see on_done): on the thread that drives the pool when the task completes, such as an event
    /// loop calling pool.poll() when pool.native_handle() is readable. The result or the task's exception comes out
    /// of the co_await, as from get().
    [[nodiscard]] awaiter operator co_await() noexcept { return awaiter(this); }
#endif

    /// \cond INTERNAL
    [[nodiscard]] detail::state_base* state() const noexcept { return s_.get(); }
    [[nodiscard]] std::shared_ptr<detail::state_base> shared_state() const noexcept { return s_; }
    /// \endcond

private:
    void require_state() const {
        if (!s_) throw std::future_error(std::future_errc::no_state);
    }

    std::shared_ptr<detail::value_state<T>> s_;
};

/// Waits for every future in `fs` (results stay in the futures).
template <class T>
void wait_all(std::span<future<T>> fs) {
    for (auto& f : fs)
        if (f.valid()) f.wait();
}
/// Waits for every valid future in `fs`.
template <class T>
void wait_all(std::vector<future<T>>& fs) {
    wait_all(std::span<future<T>>(fs));
}

/// Index of a future in `fs` that is ready, waiting (and driving its pool) until one is. Futures of several
/// pools (and of start_method::in_process) may be mixed: every pool that owns one is driven while this waits.
/// Futures that are not valid are skipped; returns fs.size() when none is valid.
template <class T>
std::size_t wait_any(std::span<future<T>> fs) {
    std::size_t valid = 0;
    for (std::size_t i = 0; i < fs.size(); ++i) {
        if (!fs[i].valid()) continue;
        if (fs[i].is_ready()) return i;
        ++valid;
    }
    if (valid == 0) return fs.size();
    detail::completion_queue q;
    q.reserve(fs.size());
    for (std::size_t i = 0; i < fs.size(); ++i)
        if (fs[i].valid()) q.watch(fs[i].shared_state(), i);
    return *q.next();
}
/// wait_any over a vector of futures.
template <class T>
std::size_t wait_any(std::vector<future<T>>& fs) {
    return wait_any(std::span<future<T>>(fs));
}

/// One future yielded by as_completed(...).with_index(): its position in the input, and the future itself.
template <class T>
struct indexed_future {
    std::size_t index;              ///< position of the future in the span or vector given to as_completed
    ::procpool::future<T>& future;  ///< the completed future (get() does not wait)
};

/// Yields the futures of `fs` in the order they complete (each once; invalid ones are skipped). Linear in the
/// number of futures: each reports its own completion, so taking the next one costs the same whatever their number.
/// Futures of several pools (and of start_method::in_process) may be mixed: every pool that owns a pending one is
/// driven while the iteration waits, so a fast task of one pool is yielded before a slow one of another.
/// The iterator's index() (or with_index()) says which input a future was.
/// \code
/// for (auto& f : procpool::as_completed(futures)) use(f.get());
/// for (auto [i, f] : procpool::as_completed(futures).with_index()) out[i] = f.get();
/// \endcode
template <class T>
class as_completed {
public:
    /// Watches the futures of `fs`, which must outlive this range.
    explicit as_completed(std::span<future<T>> fs) : fs_(fs) {}
    /// Watches the futures of `fs`, which must outlive this range.
    explicit as_completed(std::vector<future<T>>& fs) : as_completed(std::span<future<T>>(fs)) {}

    class iterator {
    public:
        using value_type = future<T>;
        using difference_type = std::ptrdiff_t;
        iterator() = default;
        explicit iterator(as_completed* a) : a_(a) { advance(); }
        future<T>& operator*() const { return a_->fs_[i_]; }
        future<T>* operator->() const { return &a_->fs_[i_]; }
        /// Position in the input of the future this iterator points to.
        [[nodiscard]] std::size_t index() const noexcept { return i_; }
        iterator& operator++() {
            advance();
            return *this;
        }
        void operator++(int) { advance(); }
        bool operator==(std::default_sentinel_t) const { return a_ == nullptr; }

    private:
        void advance() {
            auto next = a_->queue().next();
            if (!next) a_ = nullptr;
            else i_ = *next;
        }
        as_completed* a_ = nullptr;
        std::size_t i_ = 0;
    };

    /// The same order, each as an indexed_future {index, future}.
    class indexed {
    public:
        class iterator {
        public:
            using value_type = indexed_future<T>;
            using difference_type = std::ptrdiff_t;
            iterator() = default;
            explicit iterator(typename as_completed::iterator it) : it_(it) {}
            indexed_future<T> operator*() const { return {it_.index(), *it_}; }
            iterator& operator++() {
                ++it_;
                return *this;
            }
            void operator++(int) { ++it_; }
            bool operator==(std::default_sentinel_t s) const { return it_ == s; }

        private:
            typename as_completed::iterator it_;
        };
        /// Begins the iteration (as as_completed::begin).
        iterator begin() { return iterator(target().begin()); }
        /// The end: every valid future has been yielded.
        std::default_sentinel_t end() { return {}; }

    private:
        friend class as_completed;
        explicit indexed(as_completed* a) : a_(a) {}
        explicit indexed(as_completed&& a) : owned_(std::move(a)) {}
        as_completed& target() { return owned_ ? *owned_ : *a_; }
        as_completed* a_ = nullptr;
        std::optional<as_completed> owned_; // with_index() on a temporary: a range-for keeps only this object alive
    };

    /// Begins the iteration: starts watching the futures (once; a second begin() continues where the first is).
    iterator begin() { return iterator(this); }
    /// The end: every valid future has been yielded.
    std::default_sentinel_t end() { return {}; }
    /// The iteration as {index, future} pairs: `for (auto [i, f] : as_completed(fs).with_index())`.
    [[nodiscard]] indexed with_index() & { return indexed(this); }
    /// On a temporary, as in a range-for: the result takes it over (a range-for keeps only its range alive).
    [[nodiscard]] indexed with_index() && { return indexed(std::move(*this)); }

private:
    detail::completion_queue& queue() {
        if (!q_) {
            q_ = std::make_unique<detail::completion_queue>();
            q_->reserve(fs_.size());
            for (std::size_t i = 0; i < fs_.size(); ++i)
                if (fs_[i].valid()) q_->watch(fs_[i].shared_state(), i);
        }
        return *q_;
    }

    std::span<future<T>> fs_;
    std::unique_ptr<detail::completion_queue> q_;
};

/// Deduces T from a vector of futures.
template <class T>
as_completed(std::vector<future<T>>&) -> as_completed<T>;

PROCPOOL_END_NAMESPACE

#if PROCPOOL_HEADER_ONLY
#include <procpool/detail/future_impl.hpp>
#endif

#endif // PROCPOOL_FUTURE_HPP
