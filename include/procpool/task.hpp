// SPDX-License-Identifier: BSL-1.0
// procpool/task.hpp: PROCPOOL_TASK, compile-time task traits, and the run-time registry (name -> invoker).
#ifndef PROCPOOL_TASK_HPP
#define PROCPOOL_TASK_HPP

#include <procpool/codec.hpp>
#include <procpool/config.hpp>
#include <procpool/error.hpp>

#include <algorithm>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <typeinfo>
#include <vector>

PROCPOOL_BEGIN_NAMESPACE

/// Compile-time facts about a task. The primary template describes anything that is not a registered task;
/// PROCPOOL_TASK specializes it. Users never specialize it by hand.
template <auto Task>
struct task_traits {
    static constexpr bool registered = false;
};

/// True when `Task` was registered with PROCPOOL_TASK or PROCPOOL_TASK_AS.
template <auto Task>
concept registered_task = task_traits<Task>::registered;

namespace detail {

template <class... T>
struct type_list {};

template <class F>
struct fn_sig {
    static constexpr bool is_function = false;
};
template <class R, class... A>
struct fn_sig<R (*)(A...)> {
    static constexpr bool is_function = true;
    using result = R;
    using params = type_list<A...>;
    using decayed_args = std::tuple<std::remove_cvref_t<A>...>;
    /// The signature as it crosses the boundary: what by-name calls and declarations are checked against.
    using wire_signature = R (*)(std::remove_cvref_t<A>...);
    static constexpr std::size_t arity = sizeof...(A);
};
template <class R, class... A>
struct fn_sig<R (*)(A...) noexcept> : fn_sig<R (*)(A...)> {};

/// One parameter of a task: by value, const reference or rvalue reference, of a serializable type.
template <class P>
consteval bool check_task_param() {
    constexpr bool not_out = !std::is_lvalue_reference_v<P> || std::is_const_v<std::remove_reference_t<P>>;
    static_assert(not_out, "procpool: a task parameter cannot be a non-const reference: the worker's changes would "
                           "never reach the caller. Take the parameter by value or const reference, and return "
                           "what the caller needs. ");
    return not_out && check_serializable<std::remove_cvref_t<P>>();
}

template <class R>
consteval bool check_task_result() {
    if constexpr (std::is_void_v<R>) {
        return true;
    } else {
        static_assert(!std::is_reference_v<R>, "procpool: a task cannot return a reference: the referenced object "
                                               "lives in the worker. Return by value. ");
        return !std::is_reference_v<R> && check_serializable<R>();
    }
}

template <class... P>
consteval bool check_task_params(type_list<P...>) {
    return (check_task_param<P>() && ...);
}

/// Validates a task's signature; each failing type is named by the compiler's note on the template.
template <auto Task>
consteval bool check_task_signature() {
    using F = decltype(Task);
    if constexpr (std::is_member_function_pointer_v<F>) {
        static_assert(dependent_false<F>, "procpool: a member function cannot be a task: there is no object in the "
                                          "worker to call it on. Write a free function (or a static member function) "
                                          "that takes the object's data as a parameter. ");
        return false;
    } else if constexpr (!fn_sig<F>::is_function) {
        static_assert(dependent_false<F>, "procpool: a task must be a free function or a static member function "
                                          "(lambdas, function objects and std::function cannot cross a process "
                                          "boundary). ");
        return false;
    } else {
        return check_task_params(typename fn_sig<F>::params{}) &&
               check_task_result<typename fn_sig<F>::result>();
    }
}

/// Decodes the arguments from `in`, calls the task, encodes its result to `out`.
using invoker_fn = void (*)(reader& in, writer& out);

template <class Tuple, std::size_t... I>
Tuple read_args(reader& in, std::index_sequence<I...>) {
    return Tuple{in.read<std::tuple_element_t<I, Tuple>>()...}; // braced: left-to-right order
}

template <auto Task>
void invoke_task(reader& in, writer& out) {
    using sig = fn_sig<decltype(Task)>;
    using args_t = typename sig::decayed_args;
    auto args = read_args<args_t>(in, std::make_index_sequence<std::tuple_size_v<args_t>>{});
    if (in.remaining() != 0) {
        throw protocol_error("procpool: corrupt arguments: " + std::to_string(in.remaining()) +
                                 " unexpected bytes after the last argument",
                             in.offset());
    }
    if constexpr (std::is_void_v<typename sig::result>) {
        std::apply(Task, std::move(args));
    } else {
        out.write(std::apply(Task, std::move(args)));
    }
}

/// A registered task as the run-time registry knows it.
struct task_entry {
    std::string name;
    std::string signature; // the function type's mangled name: identical across processes of one build
    invoker_fn invoke = nullptr;
    std::string origin; // file:line of the registration
    std::string plugin; // path of the plugin that brought it; empty for the executable's own tasks
};

inline std::uint64_t fnv1a(std::uint64_t h, std::string_view s) noexcept {
    for (unsigned char c : s) {
        h ^= c;
        h *= 1099511628211ull;
    }
    return h;
}

inline constexpr std::string_view strip_name(std::string_view s) noexcept {
    while (!s.empty() && (s.front() == ' ' || s.front() == ':')) s.remove_prefix(1);
    while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
    return s;
}

/// Process-wide registry: name -> entry. Filled during static initialization (and by plugins later).
class registry {
public:
    /// An empty registry (tests); the process's own is instance().
    registry() = default;

    static registry& instance() {
        static registry r;
        return r;
    }

    bool add(task_entry e) {
        std::lock_guard lock(mutex_);
        if (e.plugin.empty()) e.plugin = loading_;
        auto it = tasks_.find(e.name);
        if (it == tasks_.end()) {
            tasks_.emplace(e.name, std::move(e));
        } else if (it->second.origin != e.origin || it->second.signature != e.signature) {
            conflicts_.push_back("task name \"" + e.name + "\" is registered twice: at " + it->second.origin +
                                 " and at " + e.origin);
        }
        return true;
    }

    [[nodiscard]] const task_entry* find(std::string_view name) const {
        std::lock_guard lock(mutex_);
        auto it = tasks_.find(std::string(name));
        return it == tasks_.end() ? nullptr : &it->second;
    }

    /// \throws registry_error naming both registrations of every duplicated name.
    void verify() const {
        std::lock_guard lock(mutex_);
        if (conflicts_.empty()) return;
        std::string msg = "procpool: ";
        for (const auto& c : conflicts_) msg += c + "; ";
        msg += "give one of them a distinct name with PROCPOOL_TASK_AS(\"name\", fn).";
        throw registry_error(msg);
    }

    /// Stable hash of every (name, signature) the executable itself registers (plugins are loaded, in order,
    /// after the handshake): equal in two processes exactly when they are the same build.
    [[nodiscard]] std::uint64_t hash() const {
        std::lock_guard lock(mutex_);
        std::uint64_t h = 14695981039346656037ull;
        for (const auto& [name, e] : tasks_) { // std::map: sorted, so the order of registration does not matter
            if (!e.plugin.empty()) continue;
            h = fnv1a(h, name);
            h = fnv1a(h, std::string_view("\0", 1));
            h = fnv1a(h, e.signature);
            h = fnv1a(h, std::string_view("\0", 1));
        }
        return h;
    }

    /// Calls f(entry) for every task (the plugin entry point exports them this way).
    template <class F>
    void for_each(F&& f) const {
        std::lock_guard lock(mutex_);
        for (const auto& kv : tasks_) f(kv.second);
    }

    /// While a plugin loads, tasks that register themselves (into this registry, when the plugin shares it)
    /// are marked as the plugin's.
    void set_loading(std::string plugin) {
        std::lock_guard lock(mutex_);
        loading_ = std::move(plugin);
    }

    [[nodiscard]] std::vector<std::string> names() const {
        std::lock_guard lock(mutex_);
        std::vector<std::string> out;
        for (const auto& kv : tasks_) out.push_back(kv.first);
        return out;
    }

private:
    mutable std::mutex mutex_;
    std::map<std::string, task_entry, std::less<>> tasks_;
    std::vector<std::string> conflicts_;
    std::string loading_;
};

template <auto Task>
struct task_base {
    static_assert(check_task_signature<Task>());
    static constexpr bool registered = true;
    using signature = fn_sig<decltype(Task)>;
    /// The result type of the task (`void` allowed).
    using result_type = typename signature::result;
    /// The decayed parameter types: what is encoded on the wire.
    using args_tuple = typename signature::decayed_args;
    static constexpr std::size_t arity = signature::arity;

    static bool register_task(std::string_view name, const char* file, int line) {
        return registry::instance().add(task_entry{std::string(strip_name(name)),
                                                   typeid(typename signature::wire_signature).name(),
                                                   &invoke_task<Task>, std::string(file) + ":" + std::to_string(line),
                                                   {}});
    }
};

} // namespace detail

/// Result type of a registered task.
template <auto Task>
using task_result_t = typename task_traits<Task>::result_type;

/// The names of all tasks registered in this process, sorted.
[[nodiscard]] inline std::vector<std::string> registered_task_names() {
    return detail::registry::instance().names();
}

PROCPOOL_END_NAMESPACE

/// Registers free function `fn` as a task under its spelled name ("geo::norm" for PROCPOOL_TASK(geo::norm)).
/// Use it once, at global namespace scope, in one source file (like BOOST_CLASS_EXPORT): the name is the
/// task's identity across processes. A second registration of the same name is reported by the pool.
#define PROCPOOL_TASK(...) PROCPOOL_TASK_AS(#__VA_ARGS__, __VA_ARGS__)

/// Registers a function (or a function pointer constant, e.g. one overload picked with static_cast) under
/// an explicit name.
/// \code
/// PROCPOOL_TASK_AS("scale_float", static_cast<float (*)(float)>(scale));
/// \endcode
#define PROCPOOL_TASK_AS(task_name, ...)                                                                               \
    template <>                                                                                                        \
    struct procpool::task_traits<(__VA_ARGS__)> : ::procpool::detail::task_base<(__VA_ARGS__)> {                       \
        static constexpr ::std::string_view name = ::procpool::detail::strip_name(task_name);                         \
        static inline const bool registered_at_startup = register_task(task_name, __FILE__, __LINE__);                \
    }

#endif // PROCPOOL_TASK_HPP
