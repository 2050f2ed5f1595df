// SPDX-License-Identifier: BSL-1.0
// procpool/platform/posix/fork.hpp: fork() for the fork template and the forkserver, and the SIGCHLD self-pipe
// through which a template learns that one of its children ended.
#ifndef PROCPOOL_PLATFORM_POSIX_FORK_HPP
#define PROCPOOL_PLATFORM_POSIX_FORK_HPP

#include <procpool/config.hpp>
#include <procpool/platform/types.hpp>
#include <procpool/platform/posix/channel.hpp>
#include <procpool/platform/posix/errors.hpp>
#include <procpool/platform/posix/process.hpp>

#include <cerrno>
#include <csignal>

#include <fcntl.h>
#include <sys/types.h>
#include <unistd.h>

PROCPOOL_BEGIN_NAMESPACE
namespace platform {

/// fork(); the child gets 0.
inline pid_type fork_process() {
    flush_stdio();
    pid_t pid = ::fork();
    if (pid < 0) throw_errno("fork");
    return pid;
}

/// fork() that reports failure as -1 and errno instead of throwing (for the fork template).
inline pid_type fork_process_noexcept(int& err) noexcept {
    flush_stdio();
    pid_t pid = ::fork();
    err = pid < 0 ? errno : 0;
    return pid;
}

namespace detail_sigchld {
inline native_handle& write_end() {
    static native_handle fd = invalid_handle;
    return fd;
}
extern "C" inline void on_sigchld(int) {
    int saved = errno;
    char b = 1;
    [[maybe_unused]] auto r = ::write(write_end(), &b, 1);
    errno = saved;
}
} // namespace detail_sigchld

/// A descriptor that becomes readable whenever a child ends (a SIGCHLD self-pipe). For the fork template only.
inline native_handle child_exit_events() {
    int p[2];
    if (::pipe(p) < 0) throw_errno("pipe");
    for (int fd : p) {
        set_cloexec(fd);
        ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
    }
    detail_sigchld::write_end() = p[1];
    struct sigaction sa{};
    sa.sa_handler = detail_sigchld::on_sigchld;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
    ::sigaction(SIGCHLD, &sa, nullptr);
    return p[0];
}

/// Empties a non-blocking pipe, such as the self-pipe of child_exit_events.
inline void drain(native_handle fd) noexcept {
    char buf[256];
    while (::read(fd, buf, sizeof buf) > 0) {
    }
}

/// In a child forked from the template: restores default SIGCHLD handling and closes the self-pipe.
inline void reset_child_exit_events(native_handle read_end) noexcept {
    ::signal(SIGCHLD, SIG_DFL);
    close_handle(read_end);
    close_handle(detail_sigchld::write_end());
    detail_sigchld::write_end() = invalid_handle;
}

} // namespace platform
PROCPOOL_END_NAMESPACE

#endif // PROCPOOL_PLATFORM_POSIX_FORK_HPP
