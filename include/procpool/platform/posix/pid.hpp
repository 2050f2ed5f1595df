// SPDX-License-Identifier: BSL-1.0
// procpool/platform/posix/pid.hpp: this process's id, cached across calls and reset in forked children.
#ifndef PROCPOOL_PLATFORM_POSIX_PID_HPP
#define PROCPOOL_PLATFORM_POSIX_PID_HPP

#include <procpool/config.hpp>
#include <procpool/platform/types.hpp>

#include <atomic>

#include <pthread.h>
#include <unistd.h>

PROCPOOL_BEGIN_NAMESPACE
namespace platform {

/// The id of the calling process (getpid).
inline pid_type current_pid() noexcept { return static_cast<pid_type>(::getpid()); }

namespace detail_pid {
inline std::atomic<pid_type>& cache() noexcept {
    static std::atomic<pid_type> pid{0};
    return pid;
}
extern "C" inline void on_fork_child() { cache().store(0, std::memory_order_relaxed); } // re-read lazily
} // namespace detail_pid

/// current_pid() without a system call on every use (pool::check_owner runs on every submit). The cache is
/// cleared in the child of every fork() that runs the pthread_atfork handlers (fork(), posix fork wrappers).
inline pid_type cached_pid() noexcept {
    auto pid = detail_pid::cache().load(std::memory_order_relaxed);
    if (pid != 0) return pid;
    static const bool registered = ::pthread_atfork(nullptr, nullptr, detail_pid::on_fork_child) == 0;
    pid = current_pid();
    if (registered) detail_pid::cache().store(pid, std::memory_order_relaxed);
    return pid;
}

/// The id of the calling process's parent (getppid).
inline pid_type parent_pid() noexcept { return static_cast<pid_type>(::getppid()); }

} // namespace platform
PROCPOOL_END_NAMESPACE

#endif // PROCPOOL_PLATFORM_POSIX_PID_HPP
