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

/// The readable name of a mangled type name (itself where the ABI has no demangler).
PROCPOOL_DECL std::string demangle(const char* name);

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
PROCPOOL_DECL exception_record capture_exception(std::exception_ptr ep);

/// Recreates the exception a record describes, as its own type when it is a standard one.
[[noreturn]] PROCPOOL_DECL void throw_exception_record(const exception_record& r);

} // namespace detail

PROCPOOL_END_NAMESPACE

#if PROCPOOL_HEADER_ONLY
#include <procpool/detail/error_impl.hpp>
#endif

#endif // PROCPOOL_ERROR_HPP
