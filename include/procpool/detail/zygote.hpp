// SPDX-License-Identifier: BSL-1.0
// procpool/detail/zygote.hpp: per-task isolation and resource limits.
//
// isolation_mode::per_task: a worker is started, set up and initialized as usual (spawned, forked by the fork
// template or by the forkserver), then becomes a zygote: for every job it receives it forks a task process that runs
// that one job, sends its result through the worker's own channel and result ring (the same fast path), and exits.
// The worker waits for it, and if it ended without answering (a crash, a signal, exit()) sends task_died, so the pool
// fails that job alone. The worker applies contexts and loads plugins itself, so its children inherit them; nothing a
// task does reaches the next one. One zygote per pool slot: forks run in parallel, and dispatch, timeouts,
// recycling, retries and replacements stay the engine's, unchanged.
//
// Resource limits (resource_limits) are applied by every worker after its initializer, before its first task (setrlimit
// on POSIX, a job object on Windows); a zygote's task processes inherit them, and each starts with its own CPU time
// at zero.
#ifndef PROCPOOL_DETAIL_ZYGOTE_HPP
#define PROCPOOL_DETAIL_ZYGOTE_HPP

#include <procpool/config.hpp>
#include <procpool/detail/shared_handles.hpp>
#include <procpool/detail/wire.hpp>
#include <procpool/error.hpp>
#include <procpool/options.hpp>
#include <procpool/platform/platform.hpp>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <exception>
#include <string>
#include <string_view>
#include <system_error>

PROCPOOL_BEGIN_NAMESPACE

namespace detail {

/// Refuses, at pool construction, what this platform cannot do. \throws start_error.
inline void check_isolation_options(const pool_options& o) {
    const bool limited = o.limits.address_space || o.limits.cpu_time.count() || o.limits.open_files || !o.limits.core_dumps;
    if (o.start == start_method::in_process && (o.isolation == isolation_mode::per_task || limited))
        throw start_error("procpool: isolation_mode::per_task and resource_limits need worker processes; "
                          "start_method::in_process runs tasks in the caller. Use spawn, fork or forkserver.");
    if (!PROCPOOL_POSIX && o.isolation == isolation_mode::per_task)
        throw start_error("procpool: isolation_mode::per_task is not available on Windows, which has no fork(): a "
                          "fresh process per task would be a cold start per task. Use max_tasks_per_worker = 1 "
                          "instead (a new worker, initializer included, after every task).");
    if (!PROCPOOL_POSIX && o.limits.open_files)
        throw start_error("procpool: resource_limits::open_files is not available on Windows, which has no "
                          "per-process handle limit to set (its job objects limit memory and CPU time, not handles). "
                          "Leave open_files at 0; address_space, cpu_time and core_dumps apply.");
    if (!platform::has_process_limits && limited)
        throw start_error("procpool: pool_options::limits is not supported on this platform. Leave limits at their "
                          "defaults.");
}

/// Puts the pool's limits in the setup frame.
inline void put_limits(setup_msg& s, const pool_options& o) {
    s.per_task = o.isolation == isolation_mode::per_task;
    s.limit_address_space = o.limits.address_space;
    s.limit_cpu_seconds = static_cast<std::uint64_t>(std::max<std::int64_t>(0, o.limits.cpu_time.count()));
    s.limit_open_files = o.limits.open_files;
    s.no_core_dumps = !o.limits.core_dumps;
}

/// The limits in force in this worker (none until it applied them), for naming a limit in a task's error.
inline platform::process_limits& active_limits() {
    static platform::process_limits l;
    return l;
}

/// Applies the setup frame's limits to this worker. Returns "" or what the system refused.
inline std::string apply_limits(const setup_msg& s) {
    platform::process_limits l{s.limit_address_space, s.limit_cpu_seconds, s.limit_open_files, s.no_core_dumps};
    if (!l.address_space && !l.cpu_seconds && !l.open_files && !l.no_core_dumps) return {};
    if (auto err = platform::apply_limits(l); !err.empty())
        return "procpool: worker pid " + std::to_string(platform::current_pid()) +
               " could not apply pool_options::limits: " + err;
    active_limits() = l;
    return {};
}

/// A task's exception that a limit caused becomes limit_exceeded: a failed allocation under a memory limit;
/// under an open-files limit, EMFILE (as a std::system_error), or any failure while every descriptor is in use.
inline void name_limit(exception_record& rec, std::string_view task) {
    const auto& l = active_limits();
    std::string limit;
    if (l.address_space && rec.kind == exception_kind::bad_alloc) {
        rec.type = "RLIMIT_AS";
        limit = std::string(platform::memory_limit_name) + " of " + std::to_string(l.address_space) + " bytes";
    }
#if PROCPOOL_POSIX
    else if (l.open_files && ((rec.kind == exception_kind::system_error && rec.code == EMFILE) ||
                              platform::descriptor_table_full())) {
        rec.type = "RLIMIT_NOFILE";
        limit = "open files limit (RLIMIT_NOFILE) of " + std::to_string(l.open_files);
    }
#endif
    if (limit.empty()) return;
    rec.kind = exception_kind::limit_exceeded;
    rec.what = "procpool: task \"" + std::string(task) + "\" exceeded the " + limit + " in process " +
               std::to_string(platform::current_pid()) + ": " + rec.what;
}

/// The error of a task whose process ended as `st`, when a limit of `o` explains it (RLIMIT_CPU's SIGXCPU; on
/// Windows, the job object's exit code ERROR_NOT_ENOUGH_QUOTA).
inline std::exception_ptr limit_death(const pool_options& o, const platform::exit_status& st, const std::string& task,
                                      long pid) {
    if (!o.limits.cpu_time.count() || !platform::cpu_limit_signal(st)) return nullptr;
    return std::make_exception_ptr(limit_exceeded(
        "procpool: task \"" + task + "\" exceeded the " + platform::cpu_limit_name + " of " +
            std::to_string(o.limits.cpu_time.count()) + " s; its process pid " + std::to_string(pid) + " " +
            platform::describe_exit(st),
        "RLIMIT_CPU"));
}

#if PROCPOOL_POSIX
/// The worker's side of per-task isolation: runs each job in a fresh fork of this (warm) worker.
class task_forker {
public:
    task_forker() : answered_(platform::shared_word()) {}

    /// Runs `job` (which sends the job's result through `ch` and returns false when the parent is gone) in a child,
    /// waits for it, and sends task_died for job `id` if the child ended without answering. False: parent gone.
    template <class Channel, class Job>
    bool run(Channel& ch, std::uint64_t id, Job&& job) {
        answered_->store(0, std::memory_order_relaxed);
        int err = 0;
        const auto self = platform::current_pid();
        const auto pid = platform::fork_process_noexcept(err);
        if (pid == 0) {
            // Dies with its worker (a timeout kills the worker, and so this task); needs nothing else of it.
            if (!platform::bind_lifetime_to_parent(self)) platform::quick_exit_process(0);
            shared_table::adopt_in_forked_child(); // the buffers this worker mapped are the task's to use
            const bool sent = job();
            if (sent) answered_->store(1, std::memory_order_release);
            platform::quick_exit_process(0); // no static destructors, no retire hooks: they belong to the worker
        }
        task_died_msg died{id, pid, -1, 0};
        if (pid > 0) {
            ch.publish_task_process(pid);
            const auto st = platform::wait_child(pid);
            ch.adopt_ring_head(); // the child advanced the shared ring; this copy of its head did not move
            if (answered_->load(std::memory_order_acquire)) return true;
            died.code = st.code;
            died.signal = st.signal;
        } else {
            died.code = -1000 - err; // could not fork: the errno, told apart from an exit code
        }
        return ch.send(make_frame(frame_type::task_died, died));
    }

private:
    std::atomic<std::uint64_t>* answered_; // shared with the child: it sent its answer
};
#endif

/// What failed a job whose task process ended as `d` says, for worker_died.
inline std::string task_death_cause(const task_died_msg& d, long worker_pid) {
    if (d.code <= -1000)
        return "worker pid " + std::to_string(worker_pid) + " could not fork a process for it: " +
               std::system_category().message(static_cast<int>(-1000 - d.code));
    return "task process pid " + std::to_string(d.pid) + " (forked by worker pid " + std::to_string(worker_pid) + ") " +
           platform::describe_exit(platform::exit_status{d.code, d.signal});
}

} // namespace detail

PROCPOOL_END_NAMESPACE

#endif // PROCPOOL_DETAIL_ZYGOTE_HPP
