// SPDX-License-Identifier: BSL-1.0
// procpool/future.hpp: future<T>, the shared state behind it, and waiting on many futures.
#ifndef PROCPOOL_FUTURE_HPP
#define PROCPOOL_FUTURE_HPP

#include <procpool/codec.hpp>
#include <procpool/config.hpp>
#include <procpool/error.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <future>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

PROCPOOL_BEGIN_NAMESPACE

namespace detail {

struct state_base;

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
};

inline std::exception_ptr exception_from_record(const exception_record& rec) {
    try {
        throw_exception_record(rec);
    } catch (...) {
        return std::current_exception();
    }
}

/// Shared state of one job (a task or a chunk of a map). Completed once, under the pool's lock.
struct state_base {
    std::uint64_t id = 0;
    std::string task;
    std::atomic<bool> done{false};
    std::exception_ptr error;     // the job as a whole failed (worker died, cancelled, pool closed...)
    std::weak_ptr<engine> owner;  // drives progress; weak, so a future does not keep a pool alive
    virtual ~state_base() = default;

    /// Reads a result payload (outcome of a task, or count + outcomes of a batch). \throws protocol_error.
    virtual void deliver(reader& r) = 0;

    void fail(std::exception_ptr e) {
        error = std::move(e);
        done.store(true, std::memory_order_release);
    }
    void deliver_payload(std::span<const std::byte> payload) {
        try {
            reader r(payload);
            deliver(r);
            if (r.remaining() != 0)
                throw protocol_error("procpool: corrupt result: " + std::to_string(r.remaining()) + " trailing bytes",
                                     r.offset());
        } catch (...) {
            error = std::current_exception();
        }
        done.store(true, std::memory_order_release);
    }
};

/// Reads one outcome: true + value, or false + exception record.
template <class T>
void read_outcome(reader& r, std::optional<T>& value, std::exception_ptr& error) {
    if (r.read<bool>()) {
        if constexpr (std::is_void_v<T>) value.emplace();
        else value.emplace(r.read<T>());
    } else {
        error = exception_from_record(r.read<exception_record>());
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
            task_error = exception_from_record(r.read<exception_record>());
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
        if (n != values.size())
            throw protocol_error("procpool: corrupt result: batch of " + std::to_string(values.size()) +
                                     " answered with " + std::to_string(n) + " outcomes",
                                 r.offset());
        for (std::size_t i = 0; i < values.size(); ++i) {
            if (r.read<bool>()) {
                if constexpr (std::is_void_v<T>) values[i].emplace();
                else values[i].emplace(r.read<T>());
            } else {
                if (errors.empty()) errors.resize(values.size());
                errors[i] = exception_from_record(r.read<exception_record>());
            }
        }
    }
};

inline void wait_state(state_base& s, std::optional<std::chrono::steady_clock::time_point> deadline = std::nullopt) {
    if (s.done.load(std::memory_order_acquire)) return;
    if (auto e = s.owner.lock()) {
        e->wait(s, deadline);
        return;
    }
    // The pool is gone and nothing will complete this state (the pool fails every state before it goes).
    if (!s.done.load(std::memory_order_acquire))
        s.fail(std::make_exception_ptr(pool_closed("procpool: the pool was destroyed before task \"" + s.task +
                                                   "\" completed")));
}

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
        return e && e->cancel(*s_);
    }

    /// \cond INTERNAL
    [[nodiscard]] detail::state_base* state() const noexcept { return s_.get(); }
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

/// Index of a future in `fs` that is ready, waiting (and driving its pool) until one is.
/// Futures that are not valid are skipped; returns fs.size() when none is valid.
template <class T>
std::size_t wait_any(std::span<future<T>> fs) {
    std::vector<detail::state_base*> states;
    std::vector<std::size_t> index;
    for (std::size_t i = 0; i < fs.size(); ++i) {
        if (!fs[i].valid()) continue;
        if (fs[i].is_ready()) return i;
        states.push_back(fs[i].state());
        index.push_back(i);
    }
    if (states.empty()) return fs.size();
    auto e = states.front()->owner.lock();
    if (!e) {
        detail::wait_state(*states.front());
        return index.front();
    }
    return index[e->wait_any(states)];
}

/// Yields the futures of `fs` in the order they complete (each once; invalid ones are skipped).
/// \code
/// for (auto& f : procpool::as_completed(futures)) use(f.get());
/// \endcode
template <class T>
class as_completed {
public:
    /// Watches the futures of `fs`, which must outlive this range.
    explicit as_completed(std::span<future<T>> fs) : fs_(fs), taken_(fs.size(), false) {}
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
        iterator& operator++() {
            advance();
            return *this;
        }
        void operator++(int) { advance(); }
        bool operator==(std::default_sentinel_t) const { return a_ == nullptr; }

    private:
        void advance() {
            std::vector<future<T>> dummy;
            std::vector<std::size_t> open;
            for (std::size_t k = 0; k < a_->fs_.size(); ++k)
                if (!a_->taken_[k] && a_->fs_[k].valid()) open.push_back(k);
            if (open.empty()) {
                a_ = nullptr;
                return;
            }
            std::size_t pick = open.size();
            for (std::size_t k = 0; k < open.size() && pick == open.size(); ++k)
                if (a_->fs_[open[k]].is_ready()) pick = k;
            if (pick == open.size()) {
                std::vector<detail::state_base*> states;
                for (auto k : open) states.push_back(a_->fs_[k].state());
                auto e = states.front()->owner.lock();
                if (e) pick = e->wait_any(states);
                else pick = 0;
            }
            i_ = open[pick];
            a_->taken_[i_] = true;
        }
        as_completed* a_ = nullptr;
        std::size_t i_ = 0;
    };

    /// Waits for the first future to complete (advancing waits for the next).
    iterator begin() { return iterator(this); }
    /// The end: every valid future has been yielded.
    std::default_sentinel_t end() { return {}; }

private:
    std::span<future<T>> fs_;
    std::vector<bool> taken_;
};

/// Deduces T from a vector of futures.
template <class T>
as_completed(std::vector<future<T>>&) -> as_completed<T>;

PROCPOOL_END_NAMESPACE

#endif // PROCPOOL_FUTURE_HPP
