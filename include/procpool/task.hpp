// SPDX-License-Identifier: BSL-1.0
// procpool/task.hpp: PROCPOOL_TASK, compile-time task traits, and the run-time registry (name -> invoker).
#ifndef PROCPOOL_TASK_HPP
#define PROCPOOL_TASK_HPP

#include <procpool/codec.hpp>
#include <procpool/config.hpp>
#include <procpool/detail/per_thread.hpp>
#include <procpool/error.hpp>

#include <cstdint>
#include <map>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <typeinfo>
#include <vector>

PROCPOOL_BEGIN_NAMESPACE

/// A registered task and its encoded arguments, e.g. an initializer: `procpool::call<init>(42)` (pool.hpp).
struct task_call {
    /// The task's registered name.
    std::string name;
    /// Its encoded arguments.
    std::vector<std::byte> args;
};

/// Compile-time facts about a task. The primary template describes anything that is not a registered task;
/// PROCPOOL_TASK specializes it. Users never specialize it by hand.
template <auto Task>
struct task_traits {
    /// Not a registered task.
    static constexpr bool registered = false;
};

/// True when `Task` was registered with PROCPOOL_TASK or PROCPOOL_TASK_AS.
template <auto Task>
concept registered_task = task_traits<Task>::registered;

namespace detail {

template <class... T>
struct type_list {};

/// What a parameter of type P is on the wire, and decoded as in the worker: the type without const and references,
/// except that a `std::span<const T>` parameter (an argument only) travels as, and is decoded into, a
/// `std::vector<T>` that the task's span views for the duration of the call.
template <class P>
struct wire_param {
    using type = std::remove_cvref_t<P>;
};
template <class T>
struct wire_param<std::span<const T, std::dynamic_extent>> {
    using type = std::vector<T>;
};
template <class T>
struct wire_param<const std::span<const T, std::dynamic_extent>> : wire_param<std::span<const T, std::dynamic_extent>> {};
template <class T>
struct wire_param<const std::span<const T, std::dynamic_extent>&> : wire_param<std::span<const T, std::dynamic_extent>> {};
template <class P>
using wire_param_t = typename wire_param<P>::type;

template <class T>
inline constexpr bool is_span = false;
template <class T, std::size_t N>
inline constexpr bool is_span<std::span<T, N>> = true;

template <class F>
struct fn_sig {
    static constexpr bool is_function = false;
};
template <class R, class... A>
struct fn_sig<R (*)(A...)> {
    static constexpr bool is_function = true;
    using result = R;
    using params = type_list<A...>;
    using decayed_args = std::tuple<wire_param_t<A>...>;
    /// The signature as it crosses the boundary: what by-name calls and declarations are checked against.
    using wire_signature = R (*)(wire_param_t<A>...);
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
    using V = std::remove_cvref_t<P>;
    if constexpr (is_span<V>) {
        constexpr bool ok = std::is_const_v<typename V::element_type> && V::extent == std::dynamic_extent;
        static_assert(ok, "procpool: a span parameter must be std::span<const T> (dynamic extent): the worker decodes "
                          "the argument into storage of its own that the span views, and changes to it would never "
                          "reach the caller. Take std::span<const T>, or a std::vector<T>. ");
        if constexpr (ok) return not_out && check_serializable<wire_param_t<P>>();
        else return false;
    } else {
        return not_out && check_serializable<V>();
    }
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

/// Argument buffers a worker keeps between calls. A `const std::vector<E>&` or `const std::string&` parameter
/// (elements copied as bytes) is decoded into a buffer kept for that task: a large argument is received into
/// pages touched by the call before, not into fresh ones (for 64 MiB that is most of the cost). Only the worker's
/// task loop turns this on (one thread); the worker frees the large buffers as it frees its other large buffers.
struct kept_args {
    bool enabled = false;
    bool holds_large = false;                   // a buffer may hold more than 1 MiB
    std::vector<void (*)() noexcept> releasers; // one per buffer, registered when it is first used
    static constexpr std::size_t large_bytes = std::size_t{1} << 20;

    static kept_args& instance() { return per_thread<kept_args>(); }
    /// Frees every kept buffer that holds more than a small argument (1 MiB).
    void release() noexcept {
        if (!holds_large) return;
        for (auto f : releasers) f();
        holds_large = false;
    }
};

template <class P>
inline constexpr bool keepable_param = std::is_lvalue_reference_v<P> && contiguous_codec<std::remove_cvref_t<P>>;

/// A decoded argument that lives in a kept buffer, or in itself when the buffer is in use (a task that runs
/// itself in an in-process pool).
template <class V>
class kept_arg {
public:
    kept_arg(V& kept, bool& busy) noexcept : kept_(&kept), busy_(&busy) { busy = true; }
    explicit kept_arg(V&& own) : own_(std::move(own)) {}
    kept_arg(kept_arg&& o) noexcept : kept_(o.kept_), busy_(std::exchange(o.busy_, nullptr)), own_(std::move(o.own_)) {}
    kept_arg& operator=(kept_arg&&) = delete;
    ~kept_arg() {
        if (busy_) *busy_ = false;
    }
    [[nodiscard]] const V& get() const noexcept { return kept_ ? *kept_ : *own_; }

private:
    V* kept_ = nullptr;
    bool* busy_ = nullptr;
    std::optional<V> own_;
};

/// Frees the kept buffer of parameter I of Task if it holds more than a small argument.
template <auto Task, std::size_t I, class V>
void release_kept_arg() noexcept;

template <auto Task, std::size_t I, class V>
struct kept_buffer {
    static inline thread_local V value;
    static inline thread_local bool busy = false;
    static inline thread_local bool registered = false;
};

template <auto Task, std::size_t I, class V>
void release_kept_arg() noexcept {
    auto& v = kept_buffer<Task, I, V>::value;
    if (!kept_buffer<Task, I, V>::busy && v.capacity() * sizeof(typename V::value_type) > kept_args::large_bytes)
        V().swap(v);
}

template <auto Task, std::size_t I, class P>
auto read_arg(reader& in) {
    using V = wire_param_t<P>; // a span<const T> parameter: the vector it views, alive for the call
    if constexpr (keepable_param<P>) {
        using kb = kept_buffer<Task, I, V>;
        auto& k = kept_args::instance();
        if (!k.enabled || kb::busy) return kept_arg<V>(in.read<V>());
        if (!kb::registered) {
            k.releasers.push_back(&release_kept_arg<Task, I, V>);
            kb::registered = true;
        }
        in.read_into(kb::value);
        if (kb::value.capacity() * sizeof(typename V::value_type) > kept_args::large_bytes) k.holds_large = true;
        return kept_arg<V>(kb::value, kb::busy);
    } else {
        return in.read<V>();
    }
}

template <class A>
decltype(auto) pass_arg(A& a) noexcept {
    if constexpr (is_spec_v<A, kept_arg>) return a.get();
    else return std::move(a);
}

template <auto Task, class... P, std::size_t... I>
void call_task(reader& in, writer& out, type_list<P...>, std::index_sequence<I...>) {
    using sig = fn_sig<decltype(Task)>;
    // Braced: left-to-right order.
    std::tuple<decltype(read_arg<Task, I, P>(in))...> args{read_arg<Task, I, P>(in)...};
    if (in.remaining() != 0) {
        throw protocol_error("procpool: corrupt arguments: " + std::to_string(in.remaining()) +
                                 " unexpected bytes after the last argument",
                             in.offset());
    }
    if constexpr (std::is_void_v<typename sig::result>) {
        Task(pass_arg(std::get<I>(args))...);
    } else {
        out.write(Task(pass_arg(std::get<I>(args))...));
    }
}

template <auto Task>
void invoke_task(reader& in, writer& out) {
    using sig = fn_sig<decltype(Task)>;
    call_task<Task>(in, out, typename sig::params{}, std::make_index_sequence<sig::arity>{});
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
        static registry* r = new registry; // never destroyed: a pool in a static outlives every other static
        return *r;
    }

    /// Adds a task; a second registration of its name elsewhere is kept as a conflict for verify().
    PROCPOOL_DECL bool add(task_entry e);

    /// The task registered under `name`, or nullptr.
    [[nodiscard]] PROCPOOL_DECL const task_entry* find(std::string_view name) const;

    /// \throws registry_error naming both registrations of every duplicated name.
    PROCPOOL_DECL void verify() const;

    /// Stable hash of every (name, signature) the executable itself registers (plugins are loaded, in order,
    /// after the handshake): equal in two processes exactly when they are the same build.
    [[nodiscard]] PROCPOOL_DECL std::uint64_t hash() const;

    /// Calls f(entry) for every task (the plugin entry point exports them this way).
    template <class F>
    void for_each(F&& f) const {
        std::lock_guard lock(mutex_);
        for (const auto& kv : tasks_) f(kv.second);
    }

    /// While a plugin loads, tasks that register themselves (into this registry, when the plugin shares it)
    /// are marked as the plugin's.
    PROCPOOL_DECL void set_loading(std::string plugin);

    /// Every registered name, sorted.
    [[nodiscard]] PROCPOOL_DECL std::vector<std::string> names() const;

private:
    mutable std::mutex mutex_;
    std::map<std::string, task_entry, std::less<>> tasks_;
    std::vector<std::string> conflicts_;
    std::string loading_;
};

/// Adds a task to the process's registry (PROCPOOL_TASK): the part of a registration that is not a template.
PROCPOOL_DECL bool register_task_entry(std::string_view name, const char* signature, invoker_fn invoke,
                                       const char* file, int line);

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
        return register_task_entry(name, typeid(typename signature::wire_signature).name(), &invoke_task<Task>, file,
                                   line);
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

#if PROCPOOL_HEADER_ONLY
#include <procpool/detail/task_impl.hpp>
#endif

#endif // PROCPOOL_TASK_HPP
