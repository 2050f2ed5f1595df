// SPDX-License-Identifier: BSL-1.0
// procpool/context.hpp: contexts (parent run-time state replayed in workers) and the leak audit.
//
// A context is a registered (getter, setter) pair over a serializable value: a log level, a library's global
// configuration. Its value is captured in the parent when a task is submitted and applied in the worker before
// that task runs, only when it differs from what that worker last applied. Same semantics under every start
// method. With the leak audit on, a worker re-reads every context after each task and reports the task that
// changed one (state leaking into the next task of a reused worker).
#ifndef PROCPOOL_CONTEXT_HPP
#define PROCPOOL_CONTEXT_HPP

#include <procpool/codec.hpp>
#include <procpool/config.hpp>
#include <procpool/error.hpp>

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

PROCPOOL_BEGIN_NAMESPACE

/// What the pool does when the leak audit finds a task that changed a context.
enum class leak_policy {
    off,    ///< no audit (default): no cost
    log,    ///< log it (PROCPOOL_LOG=info or a log sink) and go on
    retire, ///< log it and retire the worker after that task: the next task gets a clean worker
    fail    ///< fail that task with state_leak (and retire the worker)
};

namespace detail {

/// One context's value, encoded.
struct context_value {
    std::string name;
    std::vector<std::byte> value;
    bool operator==(const context_value&) const = default;
};
/// Every context's value at one moment, sorted by name.
using context_snapshot = std::vector<context_value>;

struct context_entry {
    void (*capture)(writer&) = nullptr;
    void (*apply)(reader&) = nullptr;
    std::string origin;
};

class context_registry {
public:
    static context_registry& instance() {
        static context_registry* r = new context_registry; // never destroyed (a pool in a static outlives it)
        return *r;
    }

    /// Adds a context; a second registration of its name elsewhere is kept as a conflict for verify().
    PROCPOOL_DECL bool add(std::string name, context_entry e);

    /// Whether no context is registered.
    [[nodiscard]] PROCPOOL_DECL bool empty() const;

    /// \throws registry_error for two contexts with one name.
    PROCPOOL_DECL void verify() const;

    /// Reads every context through its getter.
    [[nodiscard]] PROCPOOL_DECL context_snapshot capture() const;

    /// Applies values through the setters. \throws error naming an unknown context, protocol_error on bad bytes.
    PROCPOOL_DECL void apply(const context_snapshot& values) const;

private:
    mutable std::mutex mutex_;
    std::atomic<bool> any_{false}; // whether entries_ has one
    std::map<std::string, context_entry, std::less<>> entries_;
    std::vector<std::string> conflicts_;
};

template <auto Getter, auto Setter>
struct context_def {
    using value_type = std::remove_cvref_t<decltype(Getter())>;
    static_assert(std::is_invocable_v<decltype(Setter), value_type>,
                  "procpool: a context's setter must accept the value its getter returns. ");
    static_assert(check_serializable<value_type>());
    static void capture(writer& w) { w.write(value_type(Getter())); }
    static void apply(reader& r) { Setter(r.read<value_type>()); }
    static bool register_context(std::string_view name, const char* file, int line) {
        return context_registry::instance().add(std::string(name),
                                                context_entry{&capture, &apply, std::string(file) + ":" + std::to_string(line)});
    }
};

/// The names of the contexts whose values differ between two snapshots (both sorted by name).
PROCPOOL_DECL std::vector<std::string> changed_contexts(const context_snapshot& before, const context_snapshot& after);

/// The entries of `now` that differ from `applied` (what a worker already has).
PROCPOOL_DECL context_snapshot context_delta(const context_snapshot* applied, const context_snapshot& now);

} // namespace detail

PROCPOOL_END_NAMESPACE

#define PROCPOOL_DETAIL_CAT2(a, b) a##b
#define PROCPOOL_DETAIL_CAT(a, b) PROCPOOL_DETAIL_CAT2(a, b)

/// Registers a context: a (getter, setter) pair over a serializable value, under a stable name. Workers get the
/// parent's value, as it was when each task was submitted, before that task runs. Use at namespace scope in a
/// source file, once per program.
/// \code
/// int get_verbosity();  void set_verbosity(int);
/// PROCPOOL_CONTEXT("verbosity", get_verbosity, set_verbosity);
/// \endcode
#define PROCPOOL_CONTEXT(name, getter, setter)                                                                         \
    [[maybe_unused]] static const bool PROCPOOL_DETAIL_CAT(procpool_detail_context_, __COUNTER__) =                   \
        ::procpool::detail::context_def<getter, setter>::register_context(name, __FILE__, __LINE__)

#if PROCPOOL_HEADER_ONLY
#include <procpool/detail/context_impl.hpp>
#endif

#endif // PROCPOOL_CONTEXT_HPP
