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

#include <algorithm>
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

    bool add(std::string name, context_entry e) {
        std::lock_guard lock(mutex_);
        auto it = entries_.find(name);
        if (it != entries_.end() && it->second.origin != e.origin)
            conflicts_.push_back("context \"" + name + "\" is registered twice: at " + it->second.origin + " and at " +
                                 e.origin);
        else entries_.emplace(std::move(name), std::move(e));
        return true;
    }

    [[nodiscard]] bool empty() const {
        std::lock_guard lock(mutex_);
        return entries_.empty();
    }

    /// \throws registry_error for two contexts with one name.
    void verify() const {
        std::lock_guard lock(mutex_);
        if (conflicts_.empty()) return;
        std::string msg = "procpool: ";
        for (const auto& c : conflicts_) msg += c + "; ";
        msg += "give each context its own name.";
        throw registry_error(msg);
    }

    /// Reads every context through its getter.
    [[nodiscard]] context_snapshot capture() const {
        std::lock_guard lock(mutex_);
        context_snapshot out;
        out.reserve(entries_.size());
        for (const auto& [name, e] : entries_) {
            context_value v{name, {}};
            writer w(v.value);
            e.capture(w);
            out.push_back(std::move(v));
        }
        return out;
    }

    /// Applies values through the setters. \throws error naming an unknown context, protocol_error on bad bytes.
    void apply(const context_snapshot& values) const {
        for (const auto& v : values) {
            const context_entry* e = nullptr;
            {
                std::lock_guard lock(mutex_);
                auto it = entries_.find(v.name);
                if (it != entries_.end()) e = &it->second;
            }
            if (!e)
                throw error("procpool: the parent sent context \"" + v.name +
                            "\", which this worker has not registered. Register it with PROCPOOL_CONTEXT in a "
                            "source file linked into the worker's executable.");
            reader r(v.value);
            e->apply(r);
            if (r.remaining() != 0)
                throw protocol_error("procpool: corrupt value for context \"" + v.name + "\"", r.offset());
        }
    }

private:
    mutable std::mutex mutex_;
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
inline std::vector<std::string> changed_contexts(const context_snapshot& before, const context_snapshot& after) {
    std::vector<std::string> out;
    for (const auto& a : after) {
        auto it = std::find_if(before.begin(), before.end(), [&](const context_value& b) { return b.name == a.name; });
        if (it == before.end() || it->value != a.value) out.push_back(a.name);
    }
    return out;
}

/// The entries of `now` that differ from `applied` (what a worker already has).
inline context_snapshot context_delta(const context_snapshot* applied, const context_snapshot& now) {
    if (!applied) return now;
    context_snapshot out;
    for (const auto& v : now) {
        auto it = std::find_if(applied->begin(), applied->end(), [&](const context_value& a) { return a.name == v.name; });
        if (it == applied->end() || it->value != v.value) out.push_back(v);
    }
    return out;
}

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

#endif // PROCPOOL_CONTEXT_HPP
