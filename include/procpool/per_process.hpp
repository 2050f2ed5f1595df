// SPDX-License-Identifier: BSL-1.0
// procpool/per_process.hpp: per_process<T>, a lazily constructed resource of which every process has its own.
//
// A connection, an open file, a socket or a random generator must not be shared between processes: after a
// fork, parent and child would write to one socket and read each other's replies, and a destructor run in the
// child would shut down the parent's connection (SQLAlchemy's engine-across-fork bug). per_process<T> builds
// its instance on first use in each process, notices a fork by the process id, and destroys the instance when
// a worker retires normally.
#ifndef PROCPOOL_PER_PROCESS_HPP
#define PROCPOOL_PER_PROCESS_HPP

#include <procpool/config.hpp>
#include <procpool/platform/this_process.hpp>

#include <atomic>
#include <cstddef>
#include <functional>
#include <mutex>
#include <type_traits>
#include <utility>
#include <vector>

PROCPOOL_BEGIN_NAMESPACE

/// The id of the process this runs in (a worker's in a task, the application's elsewhere): for logs and for
/// telling processes apart, as std::this_thread::get_id() tells threads apart.
[[nodiscard]] inline long this_process_id() noexcept { return static_cast<long>(platform::current_pid()); }

namespace detail {

// Functions a worker runs when it retires normally (recycling, shutdown), after the finalizer and before it
// exits: per_process<T> destroys its instance there. A forked worker leaves through _exit, which runs no
// static destructors, so this is its only chance to close what it opened.
struct retire_hook {
    void* object;
    void (*run)(void*) noexcept;
};
struct retire_hook_list {
    std::recursive_mutex mutex; // recursive: a hook (a destructor) may add or remove hooks
    std::vector<retire_hook> hooks;
};
inline retire_hook_list& retire_hooks() {
    static retire_hook_list* list = new retire_hook_list; // never destroyed, like every procpool static
    return *list;
}
inline void add_retire_hook(void* object, void (*run)(void*) noexcept) {
    auto& l = retire_hooks();
    std::lock_guard lock(l.mutex);
    l.hooks.push_back(retire_hook{object, run});
}
inline void remove_retire_hook(void* object) noexcept {
    auto& l = retire_hooks();
    std::lock_guard lock(l.mutex);
    std::erase_if(l.hooks, [&](const retire_hook& h) { return h.object == object; });
}
/// Runs every retire hook, the most recently added first (as destructors run). Called by the worker loop.
inline void run_retire_hooks() noexcept {
    auto& l = retire_hooks();
    std::lock_guard lock(l.mutex);
    for (std::size_t i = l.hooks.size(); i-- > 0;)
        if (i < l.hooks.size()) l.hooks[i].run(l.hooks[i].object); // a hook may have removed others
}

} // namespace detail

/// A lazily constructed resource of which each process gets its own instance, built by a factory.
///
/// - The first get() in a process calls the factory; later calls in that process return the same instance
///   (across tasks, in one worker). Construction is thread-safe: one thread builds, the others wait.
/// - In a process forked from one that had an instance (a fork worker, or any fork()), get() builds a fresh
///   instance. The parent's copy is deliberately leaked in the child, never destroyed there: its destructor
///   would close or shut down what the parent still uses (a connection's socket, a transaction, a temp file).
/// - A worker that retires normally (recycling, shutdown) destroys its instance after the finalizer ran,
///   before it exits. A worker that dies does not (nothing runs in a crashed process).
/// - The per_process object's own destructor destroys the instance only if this process built it.
///
/// Declare it at namespace scope (or as a function-local static) and use it from tasks:
/// \code
/// procpool::per_process<db_connection> db{[] { return db_connection("db://..."); }};
/// int count_rows(std::string table) { return db->count(table); }   // each worker its own connection
/// PROCPOOL_TASK(count_rows);
/// \endcode
/// The mutex that guards construction is a std::mutex: as with any lock, fork only from a process in which no
/// other thread is inside get() (procpool's fork start method ensures that for its workers).
template <class T>
class per_process {
    static_assert(std::is_object_v<T> && !std::is_array_v<T> && std::is_destructible_v<T>,
                  "procpool: per_process<T> needs a destructible object type T (not a reference, array or void). ");

public:
    /// The resource type.
    using value_type = T;

    /// Stores `factory`; nothing is built until the first get(). `factory()` must return a T (it may be
    /// non-movable: the result initialises the instance in place).
    template <class F>
        requires(!std::is_same_v<std::remove_cvref_t<F>, per_process>)
    explicit per_process(F factory) : make_(make_maker(std::move(factory))) {
        detail::add_retire_hook(this, &on_retire);
    }

    /// Builds instances with T's default constructor.
    per_process()
        requires std::is_default_constructible_v<T>
        : per_process([] { return T(); }) {}

    per_process(const per_process&) = delete;
    per_process& operator=(const per_process&) = delete;

    /// Destroys the instance if this process built it; leaks one inherited through fork.
    ~per_process() {
        detail::remove_retire_hook(this);
        reset();
    }

    /// This process's instance, built on first use. \throws what the factory throws (the next get() retries).
    [[nodiscard]] T& get() {
        auto pid = platform::current_pid();
        holder* h = current_.load(std::memory_order_acquire);
        if (h && h->pid == pid) return h->value;
        return build(pid);
    }
    /// get().
    [[nodiscard]] T& operator*() { return get(); }
    /// &get(): `db->query(...)`.
    [[nodiscard]] T* operator->() { return &get(); }

    /// Whether this process has built its instance (an instance inherited through fork does not count).
    [[nodiscard]] bool has_value() const noexcept {
        holder* h = current_.load(std::memory_order_acquire);
        return h && h->pid == platform::current_pid();
    }

    /// Destroys this process's instance now (the next get() builds a new one). An instance inherited through
    /// fork is forgotten, not destroyed. Not while another thread uses the instance.
    void reset() noexcept {
        auto pid = platform::current_pid();
        std::lock_guard lock(mutex_);
        holder* h = current_.load(std::memory_order_acquire);
        if (!h) return;
        current_.store(nullptr, std::memory_order_release);
        if (h->pid == pid) delete h; // the parent's, inherited through fork: leaked on purpose
    }

private:
    struct holder {
        platform::pid_type pid;
        T value;
    };

    template <class F>
    static std::function<holder*(platform::pid_type)> make_maker(F factory) {
        using R = std::invoke_result_t<F&>;
        static_assert(std::is_same_v<std::remove_cv_t<R>, T> || std::is_convertible_v<R, T>,
                      "procpool: the factory of a per_process<T> must return a T (or something convertible to "
                      "it). Write it as `[] { return T(...); }`. ");
        // The factory's prvalue initialises the member directly: T need not be movable.
        return [f = std::move(factory)](platform::pid_type pid) mutable { return new holder{pid, f()}; };
    }

    T& build(platform::pid_type pid) {
        std::lock_guard lock(mutex_);
        holder* h = current_.load(std::memory_order_acquire);
        if (h && h->pid == pid) return h->value; // another thread built it meanwhile
        // h, if any, is the parent's instance inherited through fork: forget it, never destroy it here.
        holder* mine = make_(pid);
        current_.store(mine, std::memory_order_release);
        return mine->value;
    }

    static void on_retire(void* self) noexcept { static_cast<per_process*>(self)->reset(); }

    std::function<holder*(platform::pid_type)> make_;
    std::mutex mutex_;
    std::atomic<holder*> current_{nullptr};
};

/// `per_process r{[] { return T(...); }}` deduces T from the factory.
template <class F>
per_process(F) -> per_process<std::remove_cv_t<std::invoke_result_t<F&>>>;

PROCPOOL_END_NAMESPACE

#endif // PROCPOOL_PER_PROCESS_HPP
