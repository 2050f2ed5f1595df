// SPDX-License-Identifier: BSL-1.0
// procpool/pool.hpp: the pool: submit, map, map_unordered, shutdown.
#ifndef PROCPOOL_POOL_HPP
#define PROCPOOL_POOL_HPP

#include <procpool/codec.hpp>
#include <procpool/config.hpp>
#include <procpool/detail/engine.hpp>
#include <procpool/detail/make_engine.hpp>
#include <procpool/detail/shared_handles.hpp>
#include <procpool/error.hpp>
#include <procpool/future.hpp>
#include <procpool/options.hpp>
#include <procpool/platform/types.hpp>
#include <procpool/plugin.hpp>
#include <procpool/detail/wire.hpp>
#include <procpool/lazy_results.hpp>
#include <procpool/progress.hpp>
#include <procpool/task.hpp>
#include <procpool/worker.hpp>

#include <atomic>
#include <chrono>
#include <deque>
#include <iterator>
#include <memory>
#include <mutex>
#include <optional>
#include <ranges>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

PROCPOOL_BEGIN_NAMESPACE

namespace detail {

template <auto V>
inline constexpr bool dependent_false_value = false;

/// A vector parameter (also what a span<const T> parameter travels as) takes any contiguous range of its elements
/// (a span, an array, a vector): encoded as the vector would be, without building one.
template <class P, class A>
inline constexpr bool range_for_vector = false;
template <class T, class A>
inline constexpr bool range_for_vector<std::vector<T>, A> =
    !std::is_convertible_v<A, std::vector<T>> && std::is_convertible_v<A, std::span<const T>>;

template <class P, class A>
consteval bool check_argument() {
    constexpr bool ok = std::is_convertible_v<A, P> || range_for_vector<P, A>;
    static_assert(ok, "procpool: an argument cannot be converted to the task's parameter type (the compiler's note "
                      "names both types). Pass a value of the parameter's type. ");
    return ok;
}

template <class Params, class... Args, std::size_t... I>
consteval bool check_arguments(std::index_sequence<I...>) {
    return (check_argument<std::tuple_element_t<I, Params>, Args>() && ...);
}

/// Checks that `Task` is a registered task; the failure names it through the compiler's note.
template <auto Task>
consteval bool check_task() {
    if constexpr (std::is_member_function_pointer_v<decltype(Task)>) {
        static_assert(dependent_false_value<Task>,
                      "procpool: a member function is not a registered task and cannot be one: there is no object in "
                      "the worker to call it on. Write a free function that takes the object's data, register it "
                      "with PROCPOOL_TASK(fn), and call pool.submit<fn>(args...). ");
        return false;
    } else if constexpr (!task_traits<Task>::registered) {
        static_assert(dependent_false_value<Task>,
                      "procpool: not a registered task. Tasks cross the process boundary by name, never as code: "
                      "define a free function, register it at global scope with PROCPOOL_TASK(fn), and call "
                      "pool.submit<fn>(args...). Lambdas, function objects, std::function, function pointer "
                      "variables and member functions cannot be tasks. ");
        return false;
    } else {
        return true;
    }
}

/// Checks a call of `Task` with `Args` at compile time; each failure names the task through the note.
template <auto Task, class... Args>
consteval bool check_call() {
    if constexpr (!check_task<Task>()) {
        return false;
    } else {
        using traits = task_traits<Task>;
        constexpr bool count_ok = sizeof...(Args) == traits::arity;
        static_assert(count_ok, "procpool: wrong number of arguments for this task (the compiler's note names the "
                                "task and the arguments given). ");
        if constexpr (count_ok)
            return check_arguments<typename traits::args_tuple, Args...>(std::make_index_sequence<sizeof...(Args)>{});
        else return false;
    }
}

template <auto Task>
struct result_or_void {
    using type = void;
};
template <auto Task>
    requires registered_task<Task>
struct result_or_void<Task> {
    using type = task_result_t<Task>;
};

/// The result type in the declarations of submit (with Args: checks the call) and map (without: checks the
/// task). A plain task_result_t<Task> there would drop the overload for an unregistered Task ("no matching
/// function") before the static_assert in the body runs; this one fires while the call is resolved, so our
/// message leads, ahead of errors in the caller's use of the result.
template <auto Task, class... Args>
struct checked_result {
    static_assert(check_call<Task, Args...>());
    using type = typename result_or_void<Task>::type;
};
template <auto Task>
struct checked_task_result {
    static_assert(check_task<Task>());
    using type = typename result_or_void<Task>::type;
};

/// Bytes of an argument's contiguous contents (strings, vectors of bytes or numbers; 0 for other types): sizes the
/// frame of a large call before encoding, and decides which arguments are lent.
template <class A>
std::size_t contents_bytes(const A& a) {
    using T = std::remove_cvref_t<A>;
    if constexpr (contiguous_codec<T>) return a.size() * sizeof(typename T::value_type);
    else return 0;
}
/// The contents of all of a call's arguments.
template <class... A>
std::size_t all_contents_bytes(const A&... a) {
    return (contents_bytes(a) + ... + std::size_t{0});
}

/// Throws unknown_task for `name`, saying which tasks and plugins this process has (worker_loop.hpp's record).
[[noreturn]] PROCPOOL_DECL void throw_unknown_task(std::string_view name);

/// Arguments from this size are lent (sent from the caller's object) rather than copied into the frame.
inline constexpr std::size_t lend_min_bytes = 256 * 1024;

/// Encodes one argument as parameter type P. With `lent`, a large string or vector that is the caller's own object
/// (not a conversion, which would be a temporary) is not copied: its count goes in, its bytes are lent.
template <class P, class A>
void write_as(writer& w, [[maybe_unused]] std::vector<lent_run>* lent, A&& a) {
    if constexpr (range_for_vector<P, A>) {
        std::span<const typename P::value_type> items(a);
        w.write(static_cast<std::uint64_t>(items.size())); // the layout of the vector: count, then the elements
        if constexpr (memcpy_sequence<typename P::value_type>) w.write_bytes(items.data(), items.size_bytes());
        else
            for (const auto& e : items) w.write(e);
    } else if constexpr (std::is_same_v<std::remove_cvref_t<A>, P>) {
        if constexpr (contiguous_codec<P>) {
            if (lent && contents_bytes(a) >= lend_min_bytes) {
                w.write(static_cast<std::uint64_t>(a.size()));
                lent->push_back(lent_run{w.buffer().size(), std::as_bytes(std::span(a.data(), a.size()))});
                return;
            }
        }
        w.write(a);
    } else {
        w.write(static_cast<P>(std::forward<A>(a)));
    }
}

template <class Params, class... Args, std::size_t... I>
void write_arguments(writer& w, [[maybe_unused]] std::vector<lent_run>* lent, std::index_sequence<I...>, Args&&... args) {
    (write_as<std::tuple_element_t<I, Params>>(w, lent, std::forward<Args>(args)), ...);
}

/// Encodes the arguments of one call of `Task` into `out`, lending large ones to `lent` if given.
template <auto Task, class... Args>
void encode_call(std::vector<std::byte>& out, std::vector<lent_run>* lent, Args&&... args) {
    writer w(out);
    write_arguments<typename task_traits<Task>::args_tuple>(w, lent, std::make_index_sequence<sizeof...(Args)>{},
                                                            std::forward<Args>(args)...);
}

/// Encodes one element of a map input: the single argument, or a tuple of arguments (starmap).
template <auto Task, class E>
void encode_item(std::vector<std::byte>& out, E&& e) {
    if constexpr (task_traits<Task>::arity == 1) {
        static_assert(check_call<Task, E>());
        encode_call<Task>(out, nullptr, std::forward<E>(e));
    } else {
        std::apply(
            [&](auto&&... a) {
                static_assert(check_call<Task, decltype(a)...>());
                encode_call<Task>(out, nullptr, std::forward<decltype(a)>(a)...);
            },
            std::forward<E>(e));
    }
}

} // namespace detail

/// Encodes a call of a registered task for later: an initializer or finalizer.
/// \code
/// procpool::pool p{{.initializer = procpool::call<open_db>("/tmp/db"), .finalizer = procpool::call<close_db>()}};
/// \endcode
template <auto Task, class... Args>
[[nodiscard]] task_call call(Args&&... args) {
    static_assert(detail::check_call<Task, Args...>());
    task_call c;
    c.name = std::string(task_traits<Task>::name);
    detail::encode_call<Task>(c.args, nullptr, std::forward<Args>(args)...);
    return c;
}

/// Options of map, map_unordered, map_outcomes, imap and imap_unordered:
/// `pool.map<f>(xs, {.chunksize = 100, .on_progress = procpool::progress_bar()})`.
struct map_options {
    /// Elements per chunk (one message to a worker); 0: about four chunks per worker, at most 16384 elements each
    /// (imap and imap_unordered over an input of unknown length: 1; under isolation_mode::per_task also 1, where a
    /// chunk runs in one process).
    std::size_t chunksize = 0;
    /// Told (done, total) items as chunks complete, on the waiting thread; see progress_callback and progress_bar().
    /// imap and imap_unordered call it only when the input's length is known (a sized range).
    progress_callback on_progress{};
    /// imap and imap_unordered: at most this many items pulled from the input and not yet yielded (Python's
    /// `Executor.map(buffersize=)`, counted in items); 0: four chunks per worker. Rounded up to one chunk.
    /// map, map_unordered and map_outcomes send the whole input at once and ignore it.
    std::size_t max_in_flight = 0;
    /// A timeout for each item (0: none): each item is sent alone (chunksize 1) with this limit, so an item that
    /// exceeds it fails alone with task_timeout (its worker is killed and replaced) and the others complete. A
    /// chunksize above 1 together with a timeout is refused (std::invalid_argument): a chunk is one message, run by
    /// one worker, so a limit on a chunk cannot tell which item hung. pool_options::timeout still applies to
    /// each chunk as a whole.
    std::chrono::milliseconds timeout{0};
};

/// A pool of worker processes that run registered tasks.
///
/// Thread-safe. No background thread: waiting on a future (or map, shutdown...) drives the pool.
/// The destructor waits for queued tasks and retires the workers (running their finalizers).
class pool {
public:
    /// Starts the workers and waits until each is ready (handshake and initializer done).
    /// \throws start_error (e.g. a spawned worker whose main() lacks serve_if_worker), initializer_error,
    /// registry_error (two tasks with one name).
    explicit pool(pool_options opts = {});
    /// \cond INTERNAL
    /// A pool over another engine (a backend such as procpool/mpi.hpp builds one): starts it and waits for it.
    pool(detail::engine_tag, std::shared_ptr<detail::pool_engine> engine, start_method method);
    /// \endcond
    ~pool();
    pool(const pool&) = delete;
    pool& operator=(const pool&) = delete;

    /// Runs `Task` in a worker and returns a future for its result. Arguments are encoded now, so one that
    /// cannot be encoded fails here, not in the worker. A large string or vector argument goes from the caller's
    /// object straight to an idle worker, before submit returns (else it is copied): the pool keeps no reference
    /// to the arguments.
    /// \throws pool_closed after shutdown(); the pool's error when it is broken (initializer_error...).
    template <auto Task, class... Args>
    [[nodiscard]] future<typename detail::checked_result<Task, Args...>::type> submit(Args&&... args);

    /// submit with per-task options, e.g. `pool.submit_with<f>({.timeout = 500ms}, x)`.
    template <auto Task, class... Args>
    [[nodiscard]] future<typename detail::checked_result<Task, Args...>::type> submit_with(const task_options& o,
                                                                                        Args&&... args);

    /// Runs the task registered under `name`, e.g. by a plugin loaded at run time. Checked against the
    /// registered signature: R and the argument types (without const and references) must match it exactly.
    /// \throws unknown_task when this process knows no such task, signature_error on a mismatch.
    template <class R, class... Args>
    [[nodiscard]] future<R> submit_by_name(std::string_view name, Args&&... args);

    /// Not a task: always a compile-time error that says how to make one.
    template <class F, class... Args>
    void submit(F&&, Args&&...) {
        static_assert(detail::dependent_false<F>,
                      "procpool: a callable object is not a registered task. Tasks cross the process boundary by "
                      "name, never as code: define a free function, register it at global scope with "
                      "PROCPOOL_TASK(fn), and call pool.submit<fn>(args...). Lambdas, function objects, "
                      "std::function, function pointer variables and member functions cannot be tasks. ");
    }

    /// Applies `Task` to every element of `inputs` (a tuple element is unpacked into several arguments) and
    /// returns the results in input order. Elements are sent in chunks of `chunksize` (0: about four chunks
    /// per worker, at most 16384 elements each), each as soon as it is encoded: an element that cannot be encoded
    /// throws, and the chunks before it still run. \throws the first failure in input order, after every chunk ran.
    template <auto Task, std::ranges::input_range Range>
    auto map(Range&& inputs, std::size_t chunksize = 0) {
        return map<Task>(std::forward<Range>(inputs), map_options{.chunksize = chunksize, .on_progress = {}});
    }
    /// map with options: a chunk size and a progress callback (map_options).
    template <auto Task, std::ranges::input_range Range>
    auto map(Range&& inputs, const map_options& options);

    /// Like map, but never throws for a failed item: returns one item_outcome per input element, in input order,
    /// each with its index and its value or its error, so that one bad item loses nothing else. A failure of a
    /// whole chunk (its worker died or hit a timeout: a per-task timeout applies to a chunk in map, see
    /// pool_options::timeout) is the error of each item of that chunk; `chunksize = 1` makes it per item.
    template <auto Task, std::ranges::input_range Range>
    [[nodiscard]] std::vector<item_outcome<typename detail::checked_task_result<Task>::type>>
    map_outcomes(Range&& inputs, const map_options& options = {});

    /// Like map, but yields results as chunks complete (an input range that drives the pool as it advances). The
    /// whole input is sent at once. A failed item throws when the iteration reaches it, and the range goes on after
    /// it (catch and advance again); `.outcomes()` yields every item's item_outcome and never throws for one.
    template <auto Task, std::ranges::input_range Range>
    [[nodiscard]] unordered_results<typename detail::checked_task_result<Task>::type>
    map_unordered(Range&& inputs, std::size_t chunksize = 0) {
        return map_unordered<Task>(std::forward<Range>(inputs), map_options{.chunksize = chunksize, .on_progress = {}});
    }
    /// map_unordered with options; the progress callback is called as the iteration takes each chunk.
    template <auto Task, std::ranges::input_range Range>
    [[nodiscard]] unordered_results<typename detail::checked_task_result<Task>::type>
    map_unordered(Range&& inputs, const map_options& options);

    /// Lazy, bounded map: results in input order, pulling input only as results are taken, with at most
    /// `options.max_in_flight` items between the input and the caller (Python's `Executor.map(buffersize=)`). An
    /// input of 100 million items, or an endless generator, runs in bounded memory; breaking out of the loop stops
    /// pulling (the chunks in flight still run; the pool waits for them at shutdown). Nothing is pulled before the
    /// iteration begins. The range (a view or a container) is kept in the result when it is a temporary, else
    /// referenced: it must outlive the iteration. Failed items as in map_unordered.
    /// \code
    /// for (int h : pool.imap<hash>(std::views::iota(0), {.chunksize = 64, .max_in_flight = 1024}))
    ///     if (h == 0) break;
    /// \endcode
    template <auto Task, std::ranges::input_range Range>
    [[nodiscard]] lazy_results<typename detail::checked_task_result<Task>::type>
    imap(Range&& inputs, const map_options& options = {}) {
        return lazy_map<Task>(std::forward<Range>(inputs), options, true);
    }
    /// imap, with each chunk's results as soon as it completes (completion order, the same bound).
    template <auto Task, std::ranges::input_range Range>
    [[nodiscard]] lazy_results<typename detail::checked_task_result<Task>::type>
    imap_unordered(Range&& inputs, const map_options& options = {}) {
        return lazy_map<Task>(std::forward<Range>(inputs), options, false);
    }

    /// Stops accepting tasks and retires the workers; see shutdown_mode. Idempotent.
    void shutdown(shutdown_mode mode = shutdown_mode::wait);

    /// A descriptor for an event loop (poll, epoll, Asio's `posix::stream_descriptor`): it becomes readable when the
    /// pool has something to do (a result arrived, a worker died, a deadline passed); then call poll(). It stays
    /// readable until poll() has handled that, so a level-triggered wait fits. The pool owns it: do not close it
    /// (give Asio a `dup` of it, or `release()` the descriptor before the Asio object goes). With it open, results
    /// arrive through the loop; waiting on a future from a thread still works as before. Linux: an epoll
    /// descriptor. in_process: a descriptor that never becomes readable (jobs are done when submit returns).
    /// \throws error where there is none yet (Windows and non-Linux POSIX: call poll() from a timer there).
    [[nodiscard]] platform::native_handle native_handle() { return engine_->native_handle(); }

    /// Makes progress without blocking: handles the results that arrived (completing futures and running their
    /// done-callbacks, here, and coroutines awaiting them), dispatches queued tasks, replaces dead workers, enforces
    /// timeouts. Does nothing when another thread is waiting on the pool at that moment (that thread makes the
    /// progress). Call it when native_handle() is readable, or from a timer.
    void poll() {
        check_owner();
        engine_->poll();
    }

    /// Number of workers the pool keeps (0 for in_process).
    [[nodiscard]] std::size_t size() const noexcept { return engine_->size(); }
    /// Process ids of the live workers (empty for in_process).
    [[nodiscard]] std::vector<long> worker_pids() const { return engine_->pids(); }
    /// How this pool starts its workers (pool_options::start).
    [[nodiscard]] start_method method() const noexcept { return method_; }

    /// Exceptions thrown by pool_options::on_worker_lost since the last call, oldest first (at most the newest 64).
    /// A throwing callback never reaches a future or the call that happened to drive the pool: it is contained,
    /// logged, and kept here.
    [[nodiscard]] std::vector<std::exception_ptr> take_callback_errors() {
        return engine_->take_callback_errors();
    }

private:
    template <auto Task, std::ranges::input_range Range>
    std::vector<std::shared_ptr<detail::batch_state<task_result_t<Task>>>> submit_chunks(Range&& inputs,
                                                                                          const map_options& options);
    template <auto Task, class It, class End>
    std::shared_ptr<detail::batch_state<task_result_t<Task>>> submit_chunk(It& it, const End& end, std::size_t n,
                                                                           std::size_t first, std::int64_t timeout_ms);
    template <auto Task, class Range>
    lazy_results<task_result_t<Task>> lazy_map(Range&& inputs, const map_options& options, bool ordered);
    [[nodiscard]] std::size_t default_chunksize(std::size_t total) const noexcept;
    void check_owner() const;
    /// The parent's contexts now, shared with the previous capture when nothing changed (so dispatch compares
    /// pointers). Nothing when no context is registered, or in process (the caller's state is live there).
    PROCPOOL_DECL std::shared_ptr<const detail::context_snapshot> capture_contexts();
    void enqueue(detail::job j); // checks the owner and what the job shares, then hands it to the engine

    start_method method_;
    bool per_task_ = false; // isolation_mode::per_task: map's default chunk is one item (one process each)
    platform::pid_type owner_;
    std::atomic<std::uint64_t> next_id_{1};
    std::shared_ptr<detail::pool_engine> engine_;
    std::mutex contexts_mutex_;
    std::shared_ptr<const detail::context_snapshot> last_contexts_;
    std::shared_ptr<const int> alive_ = std::make_shared<const int>(0); // lazy maps check that the pool still exists
};

// ---- definitions (the non-template ones are in detail/pool_impl.hpp) ------------------------------------------

template <auto Task, class... Args>
future<typename detail::checked_result<Task, Args...>::type> pool::submit(Args&&... args) {
    return submit_with<Task>(task_options{}, std::forward<Args>(args)...);
}

template <auto Task, class... Args>
future<typename detail::checked_result<Task, Args...>::type> pool::submit_with(const task_options& o,
                                                                               Args&&... args) {
    static_assert(detail::check_call<Task, Args...>());
    using R = task_result_t<Task>;
    if constexpr (detail::is_declared_task<std::remove_cv_t<decltype(Task)>>)
        detail::check_signature(task_traits<Task>::name, typeid(typename task_traits<Task>::wire_signature).name());
    auto st = std::make_shared<detail::value_state<R>>();
    st->id = next_id_++;
    st->task = std::string(task_traits<Task>::name);
    detail::job j{st, {}, o.timeout.count(), capture_contexts()};
    const std::size_t big = detail::all_contents_bytes(args...);
    // A large argument is lent to the process engine: written from here to an idle worker before submit returns
    // (no copy), else copied (detail/lending.hpp). Otherwise it is encoded into a kept frame whose pages are touched.
    const bool lend = big >= detail::lend_min_bytes && engine_->lends();
    if (!lend && big >= detail::large_buffer_bytes && engine_->remote()) {
        const auto bytes = big + st->task.size() + 64; // header, id, name
        j.frame = engine_->take_frame_buffer(bytes); // touched pages: the copy without the page faults
        detail::reserve_large(j.frame, bytes);     // else the same size, so that this frame can be taken next time
    }
    detail::begin_frame(j.frame, detail::expected_task_bytes<Args...>(st->task, lend ? 0 : big));
    detail::write_job_head(j.frame, st->id, st->task);
    detail::job_parts parts;
    {
        // Shared buffers go ahead of the frame, out of band (or, to other machines, as copies inside it).
        detail::collect_shared collect(parts.shared, engine_->copies_shared());
        detail::encode_call<Task>(j.frame, lend ? &parts.lent : nullptr, std::forward<Args>(args)...);
    }
    detail::finish_frame(j.frame, detail::frame_type::task, detail::lent_bytes(parts.lent));
    j.keep(std::move(parts));
    enqueue(std::move(j));
    return future<R>(std::move(st));
}

template <class R, class... Args>
future<R> pool::submit_by_name(std::string_view name, Args&&... args) {
    static_assert(detail::check_task_params(detail::type_list<std::remove_cvref_t<Args>...>{}) &&
                  detail::check_task_result<R>());
    if (!detail::registry::instance().find(name)) detail::throw_unknown_task(name);
    detail::check_signature(name, typeid(R (*)(std::remove_cvref_t<Args>...)).name());
    auto st = std::make_shared<detail::value_state<R>>();
    st->id = next_id_++;
    st->task = std::string(name);
    detail::job j{st, {}, 0, capture_contexts()};
    detail::begin_frame(j.frame, detail::expected_task_bytes<Args...>(st->task, detail::all_contents_bytes(args...)));
    detail::write_job_head(j.frame, st->id, st->task);
    writer w(j.frame);
    detail::job_parts parts;
    {
        detail::collect_shared collect(parts.shared, engine_->copies_shared());
        (w.write(args), ...);
    }
    detail::finish_frame(j.frame, detail::frame_type::task);
    j.keep(std::move(parts));
    enqueue(std::move(j));
    return future<R>(std::move(st));
}

inline std::size_t pool::default_chunksize(std::size_t total) const noexcept {
    // As Python's Pool.map: about four chunks per worker; at most 16384 items each, so that the first chunk leaves
    // early and the workers start while the rest is encoded.
    if (per_task_) return 1; // every item in a fresh process, as every task
    const std::size_t parts = std::max<std::size_t>(1, size()) * 4;
    return std::min<std::size_t>(std::max<std::size_t>(total / parts + (total % parts ? 1 : 0), 1), 16384);
}

namespace detail {
/// The chunk size a map uses: the option, else `automatic`; 1 with a per-item timeout (refusing a larger one).
PROCPOOL_DECL std::size_t chunksize_for(const map_options& o, std::size_t automatic);
} // namespace detail

template <auto Task, class It, class End>
std::shared_ptr<detail::batch_state<task_result_t<Task>>> pool::submit_chunk(It& it, const End& end, std::size_t n,
                                                                             std::size_t first,
                                                                             std::int64_t timeout_ms) {
    using R = task_result_t<Task>;
    if (it == end) return nullptr;
    auto st = std::make_shared<detail::batch_state<R>>();
    st->id = next_id_++;
    st->task = std::string(task_traits<Task>::name);
    st->first_index = first;
    detail::job j{st, {}, timeout_ms, capture_contexts()};
    detail::begin_frame(j.frame);
    j.frame.reserve(64 + st->task.size() + n * 16);
    detail::write_job_head(j.frame, st->id, st->task);
    // The count goes first, as a fixed 8 bytes patched once known: a single-pass input may end within the chunk.
    const auto count_at = detail::reserve_item_length(j.frame);
    std::size_t k = 0;
    // Items are encoded straight into the chunk's frame, each as a length-prefixed blob. An item that cannot be
    // encoded throws here; chunks sent before it run.
    detail::job_parts parts;
    for (; k < n && it != end; ++k, ++it) {
        const auto at = detail::reserve_item_length(j.frame); // known once the item is encoded
        decltype(auto) e = *it;
        detail::collect_shared collect(parts.shared, engine_->copies_shared());
        detail::encode_item<Task>(j.frame, std::forward<decltype(e)>(e));
        detail::finish_item(j.frame, at);
    }
    detail::patch_u64(j.frame, count_at, k);
    st->values.resize(k);
    detail::finish_frame(j.frame, detail::frame_type::batch);
    j.keep(std::move(parts));
    enqueue(std::move(j));
    return st;
}

template <auto Task, std::ranges::input_range Range>
std::vector<std::shared_ptr<detail::batch_state<task_result_t<Task>>>> pool::submit_chunks(Range&& inputs,
                                                                                             const map_options& options) {
    static_assert(detail::check_task<Task>());
    using R = task_result_t<Task>;
    if constexpr (!std::ranges::forward_range<Range> && !std::ranges::sized_range<Range>) {
        // A single-pass range of unknown length: take its elements first, to size the chunks.
        std::vector<std::ranges::range_value_t<Range>> all;
        for (auto&& e : inputs) all.push_back(std::forward<decltype(e)>(e));
        return submit_chunks<Task>(all, options);
    } else {
        std::size_t total = 0;
        if constexpr (std::ranges::sized_range<Range>) total = static_cast<std::size_t>(std::ranges::size(inputs));
        else // counted by hand: libc++ 14 has no std::ranges::distance
            for (auto it = std::ranges::begin(inputs), end = std::ranges::end(inputs); it != end; ++it) ++total;
        const std::size_t chunksize = detail::chunksize_for(options, default_chunksize(total));
        std::vector<std::shared_ptr<detail::batch_state<R>>> chunks;
        chunks.reserve(total / chunksize + 1);
        auto it = std::ranges::begin(inputs);
        const auto end = std::ranges::end(inputs);
        for (std::size_t first = 0; first < total; first += chunksize)
            chunks.push_back(submit_chunk<Task>(it, end, std::min(chunksize, total - first), first,
                                                options.timeout.count()));
        return chunks;
    }
}

namespace detail {
/// A lazy map's input, kept where it does not move (its iterators may point into it): the range itself when the
/// caller gave a temporary, else a reference to the caller's. Begun at the first pull (begin() of some ranges reads).
template <class Range>
struct lazy_input {
    using stored = std::conditional_t<std::is_lvalue_reference_v<Range>, Range, std::remove_cvref_t<Range>>;
    explicit lazy_input(Range&& r) : range(std::forward<Range>(r)) {}
    stored range;
    std::optional<std::ranges::iterator_t<std::remove_reference_t<stored>>> it;
    std::size_t next_index = 0;
};
} // namespace detail

template <auto Task, class Range>
lazy_results<task_result_t<Task>> pool::lazy_map(Range&& inputs, const map_options& options, bool ordered) {
    static_assert(detail::check_task<Task>());
    using R = task_result_t<Task>;
    std::size_t total = 0;
    if constexpr (std::ranges::sized_range<Range>) total = static_cast<std::size_t>(std::ranges::size(inputs));
    const std::size_t chunksize = detail::chunksize_for(options, total ? default_chunksize(total) : 1);
    const std::size_t limit =
        options.max_in_flight ? options.max_in_flight : 4 * std::max<std::size_t>(1, size()) * chunksize;
    auto in = std::make_shared<detail::lazy_input<Range>>(std::forward<Range>(inputs));
    std::weak_ptr<const int> alive = alive_;
    detail::chunk_source<R> source = [this, in, alive, timeout = options.timeout.count()](std::size_t n)
        -> detail::chunk_ptr<R> {
        if (alive.expired())
            throw pool_closed("procpool: the pool was destroyed while an imap over it was still being iterated; "
                              "keep the pool alive until the loop ends.");
        if (!in->it) in->it.emplace(std::ranges::begin(in->range));
        auto c = submit_chunk<Task>(*in->it, std::ranges::end(in->range), n, in->next_index, timeout);
        if (c) in->next_index += c->values.size();
        return c;
    };
    return lazy_results<R>(std::move(source), ordered, chunksize, limit, total, options.on_progress);
}

namespace detail {
/// Waits for every chunk; with `on_progress`, in completion order, telling it the items done after each.
template <class R>
void wait_chunks(const std::vector<std::shared_ptr<batch_state<R>>>& chunks, const progress_callback& on_progress) {
    if (!on_progress) {
        for (auto& c : chunks) wait_state(*c);
        return;
    }
    std::size_t total = 0, done = 0;
    for (auto& c : chunks) total += c->values.size();
    completion_queue q;
    q.reserve(chunks.size());
    for (std::size_t i = 0; i < chunks.size(); ++i) q.watch(chunks[i], i);
    on_progress(0, total);
    while (auto i = q.next()) {
        done += chunks[*i]->values.size();
        on_progress(done, total);
    }
}
} // namespace detail

template <auto Task, std::ranges::input_range Range>
auto pool::map(Range&& inputs, const map_options& options) {
    using R = typename detail::checked_task_result<Task>::type;
    auto chunks = submit_chunks<Task>(std::forward<Range>(inputs), options);
    detail::wait_chunks(chunks, options.on_progress);
    if constexpr (std::is_void_v<R>) {
        for (auto& c : chunks) {
            if (c->error) std::rethrow_exception(c->error);
            for (auto& e : c->errors)
                if (e) std::rethrow_exception(e);
        }
    } else {
        std::vector<R> out;
        std::size_t total = 0;
        for (auto& c : chunks) total += c->values.size();
        detail::reserve_large(out, total);
        for (auto& c : chunks) {
            if (c->error) std::rethrow_exception(c->error);
            for (std::size_t i = 0; i < c->values.size(); ++i) {
                if (!c->errors.empty() && c->errors[i]) std::rethrow_exception(c->errors[i]);
                out.push_back(std::move(*c->values[i]));
            }
        }
        return out;
    }
}

template <auto Task, std::ranges::input_range Range>
std::vector<item_outcome<typename detail::checked_task_result<Task>::type>>
pool::map_outcomes(Range&& inputs, const map_options& options) {
    using R = task_result_t<Task>;
    auto chunks = submit_chunks<Task>(std::forward<Range>(inputs), options);
    detail::wait_chunks(chunks, options.on_progress);
    std::vector<item_outcome<R>> out;
    std::size_t total = 0;
    for (auto& c : chunks) total += c->values.size();
    out.reserve(total);
    for (auto& c : chunks) {
        for (std::size_t i = 0; i < c->values.size(); ++i) out.push_back(detail::take_outcome(*c, i));
    }
    return out;
}

template <auto Task, std::ranges::input_range Range>
unordered_results<typename detail::checked_task_result<Task>::type> pool::map_unordered(Range&& inputs,
                                                                                       const map_options& options) {
    using R = task_result_t<Task>;
    auto chunks = std::make_shared<std::deque<detail::chunk_ptr<R>>>();
    std::size_t total = 0, largest = 1;
    for (auto& c : submit_chunks<Task>(std::forward<Range>(inputs), options)) {
        total += c->values.size();
        largest = std::max(largest, c->values.size());
        chunks->push_back(std::move(c));
    }
    // Everything is sent already: the source hands the chunks over, and the bound never holds one back.
    detail::chunk_source<R> source = [chunks](std::size_t) -> detail::chunk_ptr<R> {
        if (chunks->empty()) return nullptr;
        auto c = std::move(chunks->front());
        chunks->pop_front();
        return c;
    };
    return unordered_results<R>(std::move(source), false, largest, static_cast<std::size_t>(-1), total,
                                options.on_progress);
}

PROCPOOL_END_NAMESPACE

#if PROCPOOL_HEADER_ONLY
#include <procpool/detail/pool_impl.hpp>
#endif

#endif // PROCPOOL_POOL_HPP
