// SPDX-License-Identifier: BSL-1.0
// procpool/platform/posix/process.hpp: child processes seen from their parent: reaping, killing, how one ended
// (in words), a descriptor that reports its end, its memory; and ending this process at once.
#ifndef PROCPOOL_PLATFORM_POSIX_PROCESS_HPP
#define PROCPOOL_PLATFORM_POSIX_PROCESS_HPP

#include <procpool/config.hpp>
#include <procpool/platform/types.hpp>
#include <procpool/platform/posix/channel.hpp>
#include <procpool/platform/posix/clock.hpp>

#include <cerrno>
#include <csignal>
#include <cstddef>
#include <cstdio>
#include <optional>
#include <string>
#include <utility>

#include <dirent.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/syscall.h>
#endif

PROCPOOL_BEGIN_NAMESPACE
namespace platform {

/// Reaps `pid` if it has ended (or waits for it when `block`).
inline std::optional<exit_status> try_reap(pid_type pid, bool block) noexcept {
    int st = 0;
    pid_t r;
    do r = ::waitpid(static_cast<pid_t>(pid), &st, block ? 0 : WNOHANG);
    while (r < 0 && errno == EINTR);
    if (r == 0) return std::nullopt;
    if (r < 0) return exit_status{-1, 0}; // not our child any more: nothing to report
    if (WIFSIGNALED(st)) return exit_status{-1, WTERMSIG(st)};
    return exit_status{WEXITSTATUS(st), 0};
}

/// How a process ended, from a waitpid() status.
inline exit_status decode_wait_status(int st) noexcept {
    if (WIFSIGNALED(st)) return exit_status{-1, WTERMSIG(st)};
    return exit_status{WEXITSTATUS(st), 0};
}

/// Reaps any ended child: its pid and status, or nothing when none has ended.
inline std::optional<std::pair<pid_type, exit_status>> reap_any() noexcept {
    int st = 0;
    pid_t r;
    do r = ::waitpid(-1, &st, WNOHANG);
    while (r < 0 && errno == EINTR);
    if (r <= 0) return std::nullopt;
    return std::pair{static_cast<pid_type>(r), decode_wait_status(st)};
}

/// Kills `pid` (SIGKILL); a pid of 0 or less is ignored.
inline void kill_process(pid_type pid) noexcept {
    if (pid > 0) ::kill(static_cast<pid_t>(pid), SIGKILL);
}

/// Reaps a child that closed its channel: waits up to `grace_ms` for it to exit by itself, then kills it.
inline exit_status reap_or_kill(pid_type pid, int grace_ms) noexcept {
    for (int waited = 0, step = 1; waited < grace_ms; waited += step, step = step < 50 ? step * 2 : 50) {
        if (auto st = try_reap(pid, false)) return *st;
        sleep_for_ms(step);
    }
    kill_process(pid);
    return *try_reap(pid, true);
}

/// A signal's name ("SIGSEGV"), or "signal <number>".
inline std::string signal_name(int sig) {
    switch (sig) {
    case SIGABRT: return "SIGABRT";
    case SIGSEGV: return "SIGSEGV";
    case SIGKILL: return "SIGKILL";
    case SIGTERM: return "SIGTERM";
    case SIGBUS: return "SIGBUS";
    case SIGFPE: return "SIGFPE";
    case SIGILL: return "SIGILL";
    case SIGINT: return "SIGINT";
    case SIGPIPE: return "SIGPIPE";
    case SIGHUP: return "SIGHUP";
    case SIGQUIT: return "SIGQUIT";
    case SIGTRAP: return "SIGTRAP";
    case SIGXCPU: return "SIGXCPU";
    case SIGUSR1: return "SIGUSR1";
    case SIGUSR2: return "SIGUSR2";
    default: return "signal " + std::to_string(sig);
    }
}

/// "exited with code 3", "was killed by SIGSEGV".
inline std::string describe_exit(const exit_status& st) {
    if (st.signal) return "was killed by " + signal_name(st.signal);
    return "exited with code " + std::to_string(st.code);
}

/// A descriptor that becomes readable when process `pid` ends (Linux pidfd), or invalid_handle where the system has
/// none. Call it before the process can have been reaped, so that `pid` cannot name another process.
inline native_handle open_process_handle([[maybe_unused]] pid_type pid) noexcept {
#if defined(__linux__) && defined(SYS_pidfd_open)
    auto fd = static_cast<native_handle>(::syscall(SYS_pidfd_open, static_cast<pid_t>(pid), 0));
    if (fd < 0) return invalid_handle;
    set_cloexec(fd);
    return fd;
#else
    return invalid_handle;
#endif
}

/// Number of threads in this process, or -1 where it cannot be counted.
inline int thread_count() noexcept {
#if defined(__linux__)
    DIR* d = ::opendir("/proc/self/task");
    if (!d) return -1;
    int n = 0;
    while (auto* e = ::readdir(d))
        if (e->d_name[0] != '.') ++n;
    ::closedir(d);
    return n;
#else
    return -1;
#endif
}

/// Resident memory of a process in bytes, or 0 where it cannot be read.
inline std::size_t resident_bytes(pid_type pid) noexcept {
#if defined(__linux__)
    char path[64];
    std::snprintf(path, sizeof path, "/proc/%ld/statm", pid);
    FILE* f = std::fopen(path, "r");
    if (!f) return 0;
    unsigned long size = 0, rss = 0;
    int n = std::fscanf(f, "%lu %lu", &size, &rss);
    std::fclose(f);
    return n == 2 ? rss * static_cast<std::size_t>(::sysconf(_SC_PAGESIZE)) : 0;
#else
    (void)pid;
    return 0;
#endif
}

/// Flushes C stdio so a forked child does not write the parent's buffered output a second time.
inline void flush_stdio() noexcept { std::fflush(nullptr); }

/// Ends this process at once, without running atexit handlers or static destructors (a forked child's
/// copies belong to the parent).
[[noreturn]] inline void quick_exit_process(int code) noexcept {
    flush_stdio();
    ::_exit(code);
}

} // namespace platform
PROCPOOL_END_NAMESPACE

#endif // PROCPOOL_PLATFORM_POSIX_PROCESS_HPP
