// SPDX-License-Identifier: BSL-1.0
// procpool/plugin.hpp: tasks in dynamically loaded plugins, replayed in every worker.
//
// A plugin is a shared library that registers tasks with the usual macros and exports one C entry point
// (PROCPOOL_PLUGIN()). procpool::load_plugin(path) loads it in the parent; the pool remembers loaded plugins in
// order, a spawned (or template-forked) worker loads the same plugins before its initializer and first task,
// and a plugin loaded after a pool started reaches its live workers before their next task. The entry point
// copies the plugin's tasks into the host's registry, so this works with -fvisibility=hidden, where the plugin
// has a registry of its own (and with Windows DLLs, where inline variables are not shared across modules).
#ifndef PROCPOOL_PLUGIN_HPP
#define PROCPOOL_PLUGIN_HPP

#include <procpool/config.hpp>
#include <procpool/error.hpp>
#include <procpool/platform/library.hpp>
#include <procpool/task.hpp>

#include <atomic>
#include <cstddef>
#include <cstring>
#include <mutex>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <vector>

PROCPOOL_BEGIN_NAMESPACE

/// A plugin could not be loaded: missing file, not a procpool plugin, or built with another procpool version.
class plugin_error : public error {
public:
    using error::error;
};

/// A call by name, or through a declaration, does not match the signature the task was registered with.
class signature_error : public error {
public:
    using error::error;
};

namespace detail {

/// One exported task, in C types: the entry point crosses a module boundary.
struct plugin_task {
    const char* name;
    const char* signature;
    invoker_fn invoke;
    const char* origin;
};
using plugin_sink_fn = void (*)(void* context, const plugin_task* task);
using plugin_entry_fn = int (*)(int host_version, void* context, plugin_sink_fn sink);
inline constexpr const char* plugin_entry_name = "procpool_plugin_v0";

/// Body of the entry point PROCPOOL_PLUGIN() defines: hands every task of the plugin's registry to the host.
inline int export_plugin_tasks(int host_version, void* context, plugin_sink_fn sink) noexcept {
    if (host_version != PROCPOOL_VERSION) return PROCPOOL_VERSION;
    try {
        registry::instance().for_each([&](const task_entry& e) {
            plugin_task t{e.name.c_str(), e.signature.c_str(), e.invoke, e.origin.c_str()};
            sink(context, &t);
        });
    } catch (...) {
        return -1;
    }
    return 0;
}

struct plugin_list {
    std::mutex mutex;
    std::vector<std::string> paths; // loaded, in order
    std::atomic<std::size_t> count{0}; // paths.size(), read without the lock on the dispatch path
};
inline plugin_list& plugins() {
    static plugin_list* p = new plugin_list; // never destroyed: a pool in a static dispatches during exit
    return *p;
}

} // namespace detail

/// Loads a plugin (a shared library with PROCPOOL_PLUGIN()) into this process and registers its tasks. Pools
/// load it into their workers too, before the next task. Loading a path twice does nothing.
/// \throws plugin_error (cannot load, not a plugin, other procpool version), registry_error (duplicate names).
PROCPOOL_DECL void load_plugin(const std::string& path);

/// The plugins loaded into this process, in load order (absolute paths).
[[nodiscard]] PROCPOOL_DECL std::vector<std::string> loaded_plugins();

namespace detail {

/// Loads, in order, the plugins this process does not have yet (a worker catching up with its parent).
inline void load_plugins(const std::vector<std::string>& paths) {
    for (const auto& p : paths) load_plugin(p);
}

/// A string usable as a template argument (the stable name of a declared task).
template <std::size_t N>
struct fixed_string {
    char data[N]{};
    constexpr fixed_string(const char (&s)[N]) {
        for (std::size_t i = 0; i < N; ++i) data[i] = s[i];
    }
    [[nodiscard]] constexpr std::string_view view() const { return {data, N - 1}; }
};

} // namespace detail

/// A task defined elsewhere (in a plugin): its stable name and signature, without its definition. Made by
/// PROCPOOL_DECLARE_TASK; `pool.submit<decl>(args...)` keeps every compile-time check.
template <class Signature, detail::fixed_string Name>
struct declared_task;
/// A declared task with result R and parameters A... (made by PROCPOOL_DECLARE_TASK).
template <class R, class... A, detail::fixed_string Name>
struct declared_task<R(A...), Name> {
    /// The registered signature: parameters as they cross the wire (without const and references).
    using wire_signature = R (*)(detail::wire_param_t<A>...);
    /// The registered name.
    static constexpr std::string_view name = Name.view();
};

namespace detail {
template <class T>
inline constexpr bool is_declared_task = false;
template <class S, fixed_string N>
inline constexpr bool is_declared_task<declared_task<S, N>> = true;

template <class Sig>
struct declared_sig;
template <class R, class... A>
struct declared_sig<R(A...)> {
    using result = R;
    using args = std::tuple<std::remove_cvref_t<A>...>;
    static constexpr std::size_t arity = sizeof...(A);
    static constexpr bool ok = check_task_params(type_list<A...>{}) && check_task_result<R>();
};
template <class S, fixed_string N>
struct declared_sig<declared_task<S, N>> : declared_sig<S> {};

/// \throws signature_error when this process knows `name` with another signature than `wire`.
inline void check_signature(std::string_view name, const char* wire) {
    const task_entry* e = registry::instance().find(name);
    if (!e || e->signature == wire) return;
    throw signature_error("procpool: task \"" + std::string(name) + "\" is registered as " + demangle(e->signature.c_str()) +
                          ", but it was called as " + demangle(wire) +
                          ". Calls by name and declarations must spell the registered parameter and result types "
                          "exactly (without const and references).");
}
} // namespace detail

/// Compile-time facts of a declared task (PROCPOOL_DECLARE_TASK).
template <auto Task>
    requires detail::is_declared_task<std::remove_cv_t<decltype(Task)>>
struct task_traits<Task> {
    /// The declared_task type.
    using decl = std::remove_cv_t<decltype(Task)>;
    static_assert(detail::declared_sig<decl>::ok);
    /// A declared task counts as registered.
    static constexpr bool registered = true;
    /// The stable name it is registered under.
    static constexpr std::string_view name = decl::name;
    /// The task's result type.
    using result_type = typename detail::declared_sig<decl>::result;
    /// Its parameter types, without const and references.
    using args_tuple = typename detail::declared_sig<decl>::args;
    /// Its number of parameters.
    static constexpr std::size_t arity = detail::declared_sig<decl>::arity;
    /// The signature checked against the registry's.
    using wire_signature = typename decl::wire_signature;
};

PROCPOOL_END_NAMESPACE

#if defined(_WIN32)
#define PROCPOOL_DETAIL_EXPORT __declspec(dllexport)
#else
#define PROCPOOL_DETAIL_EXPORT __attribute__((visibility("default")))
#endif

/// Makes a shared library a procpool plugin: exports the entry point through which the host registers its
/// tasks. Once, at global scope, in one source file of the plugin.
#define PROCPOOL_PLUGIN()                                                                                              \
    extern "C" PROCPOOL_DETAIL_EXPORT int procpool_plugin_v0(int host_version, void* context,                         \
                                                            ::procpool::detail::plugin_sink_fn sink) {                \
        return ::procpool::detail::export_plugin_tasks(host_version, context, sink);                                  \
    }                                                                                                                  \
    static_assert(true, "")

/// Declares a task that a plugin defines, for the host: `PROCPOOL_DECLARE_TASK(geo_area, "geo::area",
/// double(shape));` then `pool.submit<geo_area>(s)`. Put it in a header the plugin ships.
#define PROCPOOL_DECLARE_TASK(ident, task_name, ...)                                                                   \
    inline constexpr ::procpool::declared_task<__VA_ARGS__, task_name> ident {}

#if PROCPOOL_HEADER_ONLY
#include <procpool/detail/plugin_impl.hpp>
#endif

#endif // PROCPOOL_PLUGIN_HPP
