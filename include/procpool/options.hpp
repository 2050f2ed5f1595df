// SPDX-License-Identifier: BSL-1.0
// procpool/options.hpp: what a pool and a task can be told: start methods, pool_options, task_options,
// shutdown modes, and what on_worker_lost reports.
#ifndef PROCPOOL_OPTIONS_HPP
#define PROCPOOL_OPTIONS_HPP

#include <procpool/config.hpp>
#include <procpool/context.hpp>
#include <procpool/detail/wire.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <optional>
#include <string>

// Around the library's own uses of a deprecated member, which must not warn (tests and examples build with -Werror).
#if defined(__GNUC__) || defined(__clang__)
#define PROCPOOL_DETAIL_DEPRECATED_PUSH                                                                                \
    _Pragma("GCC diagnostic push") _Pragma("GCC diagnostic ignored \"-Wdeprecated-declarations\"")
#define PROCPOOL_DETAIL_DEPRECATED_POP _Pragma("GCC diagnostic pop")
#elif defined(_MSC_VER)
#define PROCPOOL_DETAIL_DEPRECATED_PUSH __pragma(warning(push)) __pragma(warning(disable : 4996))
#define PROCPOOL_DETAIL_DEPRECATED_POP __pragma(warning(pop))
#else
#define PROCPOOL_DETAIL_DEPRECATED_PUSH
#define PROCPOOL_DETAIL_DEPRECATED_POP
#endif

PROCPOOL_BEGIN_NAMESPACE

/// How workers are started. See README "Start methods".
enum class start_method {
    spawn,     ///< posix_spawn of the running executable: fresh static state; needs serve_if_worker in main.
    fork,      ///< copies of the parent as it was when the pool was constructed (via a template process).
    in_process, ///< no processes: tasks run in the caller, through the full encode/decode path (debugging).
    forkserver  ///< a spawned, single-threaded server forks the workers: spawn's state, fork's start-up speed.
};

/// Whether `m` can start workers on this platform (Windows has spawn and in_process only).
constexpr bool is_available(start_method m) noexcept {
    return PROCPOOL_POSIX || m == start_method::spawn || m == start_method::in_process;
}

/// What start_method::fork does when the parent already has several threads.
enum class threaded_fork {
    refuse, ///< throw start_error (default): a lock held by another thread stays locked in the workers.
    warn    ///< log a warning and fork anyway.
};

/// Whether tasks share their worker's process state. See README "Per-task isolation".
enum class isolation_mode {
    per_worker, ///< a worker runs task after task: what one task changes in its process, the next one sees
    per_task    ///< every task (and map item) runs in a fresh fork of its warm worker, which stays warm (POSIX)
};

/// Operating-system limits every worker process applies to itself once its initializer has run, before its first
/// task (setrlimit on POSIX; on Windows a job object of the worker's own). 0 / true: not limited. A task over one
/// fails with limit_exceeded.
struct resource_limits {
    /// Bytes of address space (RLIMIT_AS): an allocation over it fails. Windows: bytes of committed memory
    /// (JOB_OBJECT_LIMIT_PROCESS_MEMORY), not of address space. 0: no limit.
    std::size_t address_space = 0;
    /// CPU time of the process (RLIMIT_CPU; with isolation_mode::per_task, of each task). Windows: user-mode CPU
    /// time only (JOB_OBJECT_LIMIT_PROCESS_TIME). 0: no limit.
    std::chrono::seconds cpu_time{0};
    /// Open descriptors (RLIMIT_NOFILE), the worker's own few included. 0: no limit. Windows has no per-process
    /// handle limit: anything but 0 is a start_error there.
    std::size_t open_files = 0;
    /// false: a crashing worker writes no core file (RLIMIT_CORE = 0); on Windows, no Windows Error Reporting for
    /// it and the processes its tasks start (JOB_OBJECT_LIMIT_DIE_ON_UNHANDLED_EXCEPTION).
    bool core_dumps = true;
};

/// What on_worker_lost reports about a worker that died.
struct worker_lost {
    /// Process id of the worker.
    long pid = 0;
    int exit_code = -1;     ///< exit code, or -1 when a signal killed it
    int signal = 0;         ///< the signal that killed it, or 0
    std::string task;       ///< the task it was running, or "" (between tasks, in its initializer or finalizer)
    std::string reason;     ///< a sentence, as in the error the task got
};

// The deprecated member must not warn in the special members the compiler writes for pool_options (g++ and clang
// report those at the class): the warning stays for a user's own use of the member. Popped after the class.
PROCPOOL_DETAIL_DEPRECATED_PUSH

/// Options of a pool. Aggregate: use designated initializers, `pool{{.workers = 4}}`.
struct pool_options {
    /// Number of worker processes; 0 means std::thread::hardware_concurrency().
    std::size_t workers = 0;
    /// How workers start. spawn is the default: the same semantics on every OS and safe with threads.
    start_method start = start_method::spawn;
    /// A worker retires (running the finalizer) after this many tasks or map chunks; 0: never.
    std::size_t max_tasks_per_worker = 0;
    /// Registered task run once in each worker before its first task: `procpool::call<init>(args...)`.
    std::optional<task_call> initializer{};
    /// Registered task run in each worker when it retires normally (shutdown or recycling).
    std::optional<task_call> finalizer{};
    /// start_method::fork in a multi-threaded parent: refuse (default) or warn.
    threaded_fork on_threads = threaded_fork::refuse;
    /// How long a worker may take from start to ready (handshake and initializer).
    std::chrono::milliseconds start_timeout{60000};
    /// Default limit on the run time of a task (or of a map chunk); 0: none. A task over it fails with
    /// task_timeout, and its worker is killed and replaced. `pool.submit_with` overrides it per task.
    std::chrono::milliseconds timeout{0};
    /// \deprecated Use `timeout`: this old spelling named the option like the exception, and is kept for one
    /// release. It applies only while `timeout` is 0: when both are set, `timeout` wins.
    [[deprecated("use pool_options::timeout")]] std::chrono::milliseconds task_timeout{0};
    /// How many more times a task runs when its worker dies under it (crash, signal, exit). 0, the default:
    /// never, since a task may have side effects. After the last attempt worker_died lists every cause.
    std::size_t max_retries = 0;
    /// A worker whose resident memory exceeds this many bytes after a task retires (the task's result is
    /// kept) and a fresh one replaces it; 0: no limit. Read from /proc on Linux; elsewhere not enforced.
    std::size_t max_memory_per_worker = 0;
    /// Called when a worker dies unexpectedly (not when it retires), from the thread that drives the
    /// pool, without the pool's lock held: it may call the pool.
    std::function<void(const worker_lost&)> on_worker_lost{};
    /// Re-read every context after each task in the worker and report a task that changed one: off (default),
    /// log, retire the worker, or fail the task with state_leak. Not applied with start_method::in_process.
    leak_policy leak_audit = leak_policy::off;
    /// How many jobs a worker may hold at once (running + sent ahead); 0, the default, adapts it per worker to
    /// about 1 ms of work: 2 for long tasks (load balancing), up to 128 for tiny ones (no idle gaps, fewer
    /// system calls). Jobs sent ahead can no longer be cancelled. With leak_audit on, always 1.
    std::size_t prefetch = 0;
    /// How long shutdown (and so the destructor) waits for retiring workers to finish their finalizer and exit;
    /// a worker still there then is killed, and the pool logs it.
    std::chrono::milliseconds shutdown_timeout{30000};
    /// per_task: every task runs in a fresh fork of its worker, which stays warm (plugins, contexts, initializer
    /// done once) and runs no task itself. POSIX only; on Windows a start_error (use max_tasks_per_worker = 1).
    isolation_mode isolation = isolation_mode::per_worker;
    /// Limits applied in every worker before its first task (POSIX; on Windows a start_error).
    resource_limits limits{};
};

PROCPOOL_DETAIL_DEPRECATED_POP

namespace detail {
/// The pool's default limit per task: `timeout`, or while it is 0 the deprecated `task_timeout`. The library's one
/// read of the deprecated field, so that no user of the pool sees its warning.
inline std::chrono::milliseconds default_timeout(const pool_options& o) noexcept {
    PROCPOOL_DETAIL_DEPRECATED_PUSH
    return o.timeout.count() != 0 ? o.timeout : o.task_timeout;
    PROCPOOL_DETAIL_DEPRECATED_POP
}
} // namespace detail

/// Per-task options for pool::submit_with.
struct task_options {
    /// Limit on this task's run time (overrides pool_options::timeout; 0: the pool's default).
    std::chrono::milliseconds timeout{0};
};

/// What shutdown() does with tasks that have not started.
enum class shutdown_mode {
    wait,          ///< run them, then retire the workers (the destructor's choice)
    cancel_pending ///< fail them with task_cancelled; running tasks still finish
};

PROCPOOL_END_NAMESPACE

#endif // PROCPOOL_OPTIONS_HPP
