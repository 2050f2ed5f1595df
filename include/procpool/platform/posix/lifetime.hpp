// SPDX-License-Identifier: BSL-1.0
// procpool/platform/posix/lifetime.hpp: a child dies with the process that started it (lifelines, the
// parent-death signal), and procpool's processes leave the terminal's signals to the application.
#ifndef PROCPOOL_PLATFORM_POSIX_LIFETIME_HPP
#define PROCPOOL_PLATFORM_POSIX_LIFETIME_HPP

#include <procpool/config.hpp>
#include <procpool/platform/types.hpp>
#include <procpool/platform/posix/channel.hpp>
#include <procpool/platform/posix/errors.hpp>

#include <cerrno>
#include <csignal>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/prctl.h>
#endif

PROCPOOL_BEGIN_NAMESPACE
namespace platform {

// PR_SET_PDEATHSIG fires when the *thread* that forked the child exits, not its process, and any thread may drive a
// pool. So a direct child of the application holds a lifeline instead: the read end of a pipe whose write end only
// the application holds. When the application ends, however it ends, the kernel closes the write end, and the
// read end, set to signal its owner with SIGKILL (F_SETSIG) on that event, kills the child even while it runs a
// task. Processes forked by a single-threaded fork template or forkserver keep PR_SET_PDEATHSIG: there the forking
// thread lives as long as its process.

namespace detail_lifeline {
/// The write ends this process holds. A process forked from this one (fork() by the application, a fork template)
/// closes them at once (pthread_atfork), so a forked copy never keeps another process's workers alive.
struct registry {
    pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;
    std::vector<native_handle> ends;
};
inline registry& ends() noexcept {
    static registry* r = new registry; // never destroyed: a pool in a static may need it during exit
    return *r;
}
extern "C" inline void before_fork() { ::pthread_mutex_lock(&ends().mutex); }
extern "C" inline void after_fork_parent() { ::pthread_mutex_unlock(&ends().mutex); }
extern "C" inline void after_fork_child() {
    auto& r = ends();
    for (auto fd : r.ends) ::close(fd);
    r.ends.clear();
    ::pthread_mutex_unlock(&r.mutex);
}
inline void install_fork_handler() noexcept {
    static const bool installed = (::pthread_atfork(before_fork, after_fork_parent, after_fork_child), true);
    (void)installed;
}
} // namespace detail_lifeline

/// A lifeline for one child: the caller keeps `parent_end` (close it with drop_lifeline once the child is reaped),
/// and passes `child_end` to the child (then closes its own copy of it).
struct lifeline_pair {
    native_handle parent_end = invalid_handle;
    native_handle child_end = invalid_handle;
};

inline lifeline_pair make_lifeline() {
    detail_lifeline::install_fork_handler();
    int p[2];
    auto& r = detail_lifeline::ends();
    ::pthread_mutex_lock(&r.mutex); // so that no fork copies the pipe before its write end is registered
    int rc = ::pipe(p);
    int err = errno;
    if (rc == 0) {
        set_cloexec(p[0]);
        set_cloexec(p[1]);
        try {
            r.ends.push_back(p[1]);
        } catch (...) {
            ::close(p[0]);
            ::close(p[1]);
            rc = -1;
            err = ENOMEM;
        }
    }
    ::pthread_mutex_unlock(&r.mutex);
    if (rc != 0) {
        errno = err;
        throw_errno("pipe (a worker's lifeline)");
    }
    return {p[1], p[0]};
}

/// Closes the parent's end of a lifeline: the child, if it still runs, is killed.
inline void drop_lifeline(native_handle& parent_end) noexcept {
    if (parent_end == invalid_handle) return;
    auto& r = detail_lifeline::ends();
    ::pthread_mutex_lock(&r.mutex);
    std::erase(r.ends, parent_end);
    ::pthread_mutex_unlock(&r.mutex);
    ::close(parent_end);
    parent_end = invalid_handle;
}

/// In a child: dies (SIGKILL) when the lifeline's write end closes. With no lifeline (invalid), falls back to the
/// parent-death signal (for children of a single-threaded template). Reports whether `parent` is still there.
inline bool bind_lifetime_to_parent(pid_type parent, native_handle lifeline = invalid_handle) noexcept {
    if (lifeline == invalid_handle) {
#if defined(__linux__)
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
#endif
        return static_cast<pid_type>(::getppid()) == parent; // the parent may have died before prctl
    }
    set_cloexec(lifeline); // processes the tasks start do not hold it
#if defined(F_SETSIG)
    if (::fcntl(lifeline, F_SETOWN, ::getpid()) == 0 && ::fcntl(lifeline, F_SETSIG, SIGKILL) == 0)
        ::fcntl(lifeline, F_SETFL, ::fcntl(lifeline, F_GETFL) | O_ASYNC);
#endif
    // Closed before it was armed: the signal will not come, the hangup is already there.
    pollfd p{lifeline, POLLIN, 0};
    if (::poll(&p, 1, 0) > 0 && (p.revents & (POLLHUP | POLLIN))) return false;
    return static_cast<pid_type>(::getppid()) == parent;
}

/// procpool's processes ignore the terminal's signals (Ctrl-C's SIGINT, Ctrl-\'s SIGQUIT, a closed terminal's
/// SIGHUP): those are for the application, which decides whether to end; if it ends, its lifelines end them.
inline void ignore_terminal_signals() noexcept {
    for (int sig : {SIGINT, SIGQUIT, SIGHUP}) ::signal(sig, SIG_IGN);
}

} // namespace platform
PROCPOOL_END_NAMESPACE

#endif // PROCPOOL_PLATFORM_POSIX_LIFETIME_HPP
