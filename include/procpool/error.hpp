// SPDX-License-Identifier: BSL-1.0
// procpool/error.hpp: the exceptions procpool throws, and how a task's exception crosses the boundary.
#ifndef PROCPOOL_ERROR_HPP
#define PROCPOOL_ERROR_HPP

#include <procpool/config.hpp>

#include <cstdint>
#include <exception>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <typeinfo>
#include <utility>
#include <variant>
#if __has_include(<cxxabi.h>)
#include <cxxabi.h>
#include <cstdlib>
#define PROCPOOL_DETAIL_HAS_CXXABI 1
#else
#define PROCPOOL_DETAIL_HAS_CXXABI 0
#endif

PROCPOOL_BEGIN_NAMESPACE

/// Base of every exception procpool itself throws.
class error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// A frame or an encoded value was truncated, oversized or corrupt.
/// `offset()` is the byte offset in the value or frame where decoding stopped.
class protocol_error : public error {
public:
    /// `what` is the message; `offset` where decoding stopped.
    protocol_error(const std::string& what, std::size_t offset) : error(what), offset_(offset) {}
    /// Byte offset in the value or frame where decoding stopped.
    [[nodiscard]] std::size_t offset() const noexcept { return offset_; }

private:
    std::size_t offset_;
};

/// The worker running a task died (crash, signal, exit) before it sent the result.
class worker_died : public error {
public:
    /// The message, the task that was running, and how the worker ended.
    worker_died(const std::string& what, std::string task, long pid, int exit_code, int signal)
        : error(what), task_(std::move(task)), pid_(pid), exit_code_(exit_code), signal_(signal) {}
    /// Name of the task that was running ("" when the worker died between tasks).
    [[nodiscard]] const std::string& task() const noexcept { return task_; }
    /// Process id of the worker that died.
    [[nodiscard]] long pid() const noexcept { return pid_; }
    /// Exit code when the worker exited, -1 when it was killed by a signal.
    [[nodiscard]] int exit_code() const noexcept { return exit_code_; }
    /// Signal number that killed the worker, 0 when it exited.
    [[nodiscard]] int signal() const noexcept { return signal_; }

private:
    std::string task_;
    long pid_;
    int exit_code_;
    int signal_;
};

/// A task ran longer than its timeout; its worker was killed and replaced.
class task_timeout : public error {
public:
    using error::error;
};

/// A task name that the receiving process has not registered.
class unknown_task : public error {
public:
    using error::error;
};

/// The pool was shut down before the task could run, or a call was made on a closed pool.
class pool_closed : public error {
public:
    using error::error;
};

/// The task was cancelled before it started.
class task_cancelled : public error {
public:
    using error::error;
};

/// A worker could not be started, or started but failed its handshake (wrong executable, missing
/// `serve_if_worker` guard, mismatched task registry).
class start_error : public error {
public:
    using error::error;
};

/// The task registry is inconsistent: two tasks with one name.
class registry_error : public error {
public:
    using error::error;
};

/// The leak audit (leak_policy::fail) found that a task changed a context in its worker and did not restore it.
class state_leak : public error {
public:
    using error::error;
};

/// An exception thrown by a task whose type procpool cannot recreate in the parent.
/// `type_name()` is the demangled dynamic type, `what()` the original message.
class remote_error : public error {
public:
    /// The task's exception: its demangled type and its `what()`.
    remote_error(std::string type_name, const std::string& message)
        : error(type_name + ": " + message), type_name_(std::move(type_name)), message_(message) {}
    /// Demangled dynamic type of the task's exception.
    [[nodiscard]] const std::string& type_name() const noexcept { return type_name_; }
    /// The original `what()`, without the type prefix.
    [[nodiscard]] const std::string& message() const noexcept { return message_; }

private:
    std::string type_name_;
    std::string message_;
};

/// A worker's initializer threw: carries the initializer's exception.
class initializer_error : public error {
public:
    /// The message and the initializer's own exception.
    initializer_error(const std::string& what, std::exception_ptr cause) : error(what), cause_(std::move(cause)) {}
    /// The initializer's own exception, rethrowable with std::rethrow_exception.
    [[nodiscard]] std::exception_ptr cause() const noexcept { return cause_; }

private:
    std::exception_ptr cause_;
};

/// A task exceeded one of pool_options::limits. `resource()` names it: "RLIMIT_CPU" (the task's process was killed
/// and, like any dead worker, replaced), "RLIMIT_AS" (an allocation failed) or "RLIMIT_NOFILE" (the task failed
/// with every descriptor in use). The same names on Windows, where job object limits enforce the first two.
class limit_exceeded : public error {
public:
    /// The message and the limit's name.
    limit_exceeded(const std::string& what, std::string resource) : error(what), resource_(std::move(resource)) {}
    /// "RLIMIT_CPU", "RLIMIT_AS" or "RLIMIT_NOFILE".
    [[nodiscard]] const std::string& resource() const noexcept { return resource_; }

private:
    std::string resource_;
};

namespace detail {

inline std::string demangle(const char* name) {
#if PROCPOOL_DETAIL_HAS_CXXABI
    int status = 0;
    char* out = abi::__cxa_demangle(name, nullptr, nullptr, &status);
    if (status == 0 && out) {
        std::string s(out);
        std::free(out);
        return s;
    }
#endif
    return name;
}

/// Which exception type a record recreates. The numbers are part of the wire format.
enum class exception_kind : std::uint8_t {
    other = 0, // anything else: remote_error(type, what)
    exception,
    logic_error,
    invalid_argument,
    domain_error,
    length_error,
    out_of_range,
    runtime_error,
    range_error,
    overflow_error,
    underflow_error,
    bad_alloc,
    system_error,
    unknown_task,
    protocol_error,
    error,
    bad_optional_access,
    bad_variant_access,
    state_leak,
    limit_exceeded, // the record's type holds the limit's name
    last_ = limit_exceeded
};

/// An exception as it crosses the boundary: the kind to recreate, the demangled type, what(), and a code
/// (std::system_error's value; offset for protocol_error).
struct exception_record {
    exception_kind kind = exception_kind::other;
    std::string type;
    std::string what;
    std::int64_t code = 0;
};

/// Classifies the current exception. Most-derived standard types first, so a std::out_of_range is not
/// recreated as its base std::logic_error.
inline exception_record capture_exception(std::exception_ptr ep) {
    exception_record rec;
    try {
        std::rethrow_exception(ep);
    } catch (const std::exception& e) {
        rec.type = demangle(typeid(e).name());
        rec.what = e.what();
        auto same = [&](const std::type_info& t) { return typeid(e) == t; };
        using K = exception_kind;
        if (same(typeid(std::logic_error))) rec.kind = K::logic_error;
        else if (same(typeid(std::invalid_argument))) rec.kind = K::invalid_argument;
        else if (same(typeid(std::domain_error))) rec.kind = K::domain_error;
        else if (same(typeid(std::length_error))) rec.kind = K::length_error;
        else if (same(typeid(std::out_of_range))) rec.kind = K::out_of_range;
        else if (same(typeid(std::runtime_error))) rec.kind = K::runtime_error;
        else if (same(typeid(std::range_error))) rec.kind = K::range_error;
        else if (same(typeid(std::overflow_error))) rec.kind = K::overflow_error;
        else if (same(typeid(std::underflow_error))) rec.kind = K::underflow_error;
        else if (same(typeid(std::bad_alloc))) rec.kind = K::bad_alloc;
        else if (same(typeid(std::bad_optional_access))) rec.kind = K::bad_optional_access;
        else if (same(typeid(std::bad_variant_access))) rec.kind = K::bad_variant_access;
        else if (same(typeid(std::exception))) rec.kind = K::exception;
        else if (same(typeid(unknown_task))) rec.kind = K::unknown_task;
        else if (same(typeid(error))) rec.kind = K::error;
        else if (auto* le = dynamic_cast<const limit_exceeded*>(&e); le && same(typeid(limit_exceeded))) {
            rec.kind = K::limit_exceeded; // through a nested pool
            rec.type = le->resource();
        }
        else if (auto* pe = dynamic_cast<const protocol_error*>(&e); pe && same(typeid(protocol_error))) {
            rec.kind = K::protocol_error;
            rec.code = static_cast<std::int64_t>(pe->offset());
        } else if (auto* se = dynamic_cast<const std::system_error*>(&e); se && same(typeid(std::system_error)) &&
                   (se->code().category() == std::generic_category() ||
                    se->code().category() == std::system_category())) {
            rec.kind = K::system_error;
            rec.code = se->code().value();
            // what() is "<message>: <code text>"; keep only the message so the rebuilt one is not doubled.
            std::string suffix = se->code().message();
            if (rec.what == suffix) rec.what.clear();
            else if (rec.what.size() > suffix.size() + 2 && rec.what.ends_with(": " + suffix))
                rec.what.resize(rec.what.size() - suffix.size() - 2);
            rec.type = se->code().category() == std::generic_category() ? "generic" : "system";
        } else if (auto* re = dynamic_cast<const remote_error*>(&e)) {
            // A remote_error passing through a nested pool keeps the original type name.
            rec.type = re->type_name();
            rec.what = re->message();
        }
    } catch (...) {
#if PROCPOOL_DETAIL_HAS_CXXABI
        if (auto* t = abi::__cxa_current_exception_type()) rec.type = demangle(t->name());
        else
#endif
            rec.type = "a non-std::exception object";
        rec.what = "(no message: the task threw something not derived from std::exception)";
    }
    return rec;
}

/// Recreates the exception a record describes, as its own type when it is a standard one.
[[noreturn]] inline void throw_exception_record(const exception_record& r) {
    using K = exception_kind;
    switch (r.kind) {
    case K::logic_error: throw std::logic_error(r.what);
    case K::invalid_argument: throw std::invalid_argument(r.what);
    case K::domain_error: throw std::domain_error(r.what);
    case K::length_error: throw std::length_error(r.what);
    case K::out_of_range: throw std::out_of_range(r.what);
    case K::runtime_error: throw std::runtime_error(r.what);
    case K::range_error: throw std::range_error(r.what);
    case K::overflow_error: throw std::overflow_error(r.what);
    case K::underflow_error: throw std::underflow_error(r.what);
    case K::bad_alloc: throw std::bad_alloc();
    case K::bad_optional_access: throw std::bad_optional_access();
    case K::bad_variant_access: throw std::bad_variant_access();
    case K::unknown_task: throw unknown_task(r.what);
    case K::protocol_error: throw protocol_error(r.what, static_cast<std::size_t>(r.code));
    case K::error: throw error(r.what);
    case K::state_leak: throw state_leak(r.what);
    case K::limit_exceeded: throw limit_exceeded(r.what, r.type);
    case K::system_error: {
        const auto& cat = r.type == "generic" ? std::generic_category() : std::system_category();
        // system_error's what() already holds the code's message; keep the original text verbatim.
        throw std::system_error(std::error_code(static_cast<int>(r.code), cat), r.what);
    }
    case K::exception: throw remote_error("std::exception", r.what);
    case K::other: break;
    }
    throw remote_error(r.type, r.what);
}

} // namespace detail

PROCPOOL_END_NAMESPACE

#endif // PROCPOOL_ERROR_HPP
